package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
)

// Regression tests for issue 18 (security round 3), holes 4 to 6; hole 2
// is in TestVerifierOnly.

// countingSource counts collateral requests and, if block is set, waits
// for the caller's context to end instead of answering.
type countingSource struct {
	dcap.CollateralSource
	calls       atomic.Int32
	block       bool
	hadDeadline atomic.Bool
	ended       atomic.Bool
}

func (s *countingSource) Collateral(ctx context.Context, q *dcap.Quote) (*dcap.Collateral, error) {
	s.calls.Add(1)
	if s.block {
		_, ok := ctx.Deadline()
		s.hadDeadline.Store(ok)
		<-ctx.Done()
		s.ended.Store(true)
		return nil, ctx.Err()
	}
	return s.CollateralSource.Collateral(ctx, q)
}

// TestCollateralOnlyForVerifiedQuotes: collateral is fetched only for a
// quote whose PCK chain reaches the Intel root and whose signatures
// verify, never for the FMSPC of an unverified certificate.
func TestCollateralOnlyForVerifiedQuotes(t *testing.T) {
	quote, col, at := realQuote(t)
	f := newFixture(t)
	src := &countingSource{CollateralSource: dcap.Fixed{C: col}}
	m := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
		c.Collateral, c.Now, c.InsecureSimulationRoot = src, at, nil
		c.AcceptTCB = []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}
		c.Policy.AcceptKinds = []Kind{Remote, Local}
	})
	// A quote of another root (the simulated platform's), and the real
	// quote with its report body changed (its signature fails).
	peer := f.g1(t, 1, Remote)
	simQuote, err := peer.cfg.Backend.Quote(t.Context(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), quote...)
	tampered[48+64] ^= 1 // in the report body's MRENCLAVE
	for name, q := range map[string][]byte{"another root": simQuote, "bad signature": tampered} {
		if _, err := m.verify(t.Context(), Remote, q, [64]byte{}); !errors.Is(err, ErrEvidence) {
			t.Errorf("%s: %v, want ErrEvidence", name, err)
		}
	}
	if n := src.calls.Load(); n != 0 {
		t.Errorf("%d collateral requests for quotes that do not verify, want 0", n)
	}
	if _, err := m.verify(t.Context(), Remote, quote, [64]byte{}); !errors.Is(err, ErrBinding) {
		t.Errorf("the real quote: %v, want full verification then ErrBinding", err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("%d collateral requests for the real quote, want 1", n)
	}
}

// TestCollateralFetchBoundedByHandshake: a collateral fetch runs under the
// handshake's context and ends with its deadline, even when the
// application handshakes with context.Background().
func TestCollateralFetchBoundedByHandshake(t *testing.T) {
	quote, _, at := realQuote(t)
	f := newFixture(t)
	src := &countingSource{block: true}
	m := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
		c.Collateral, c.Now, c.HandshakeTimeout = src, at, 300*time.Millisecond
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := m.NewListener(ln).Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*Conn).Handshake(context.Background())
	}()
	// A client that sends the real quote as its evidence.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	id, _ := newIdentity("client")
	c := tls.Client(raw, tlsConfig(&id, roleClient))
	writeMsg(c, msgHello, append([]byte{protocolVersion, byte(Remote)}, make([]byte, sgx.TargetInfoSize)...))
	readMsg(c, msgHello)
	writeMsg(c, msgEvidence, quote)
	writeMsg(c, msgProof, nil)
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("handshake succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handshake outlived its timeout while collateral was fetched")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the handshake took %v with a 300ms timeout", d)
	}
	if src.calls.Load() != 1 || !src.hadDeadline.Load() || !src.ended.Load() {
		t.Errorf("collateral fetch: %d calls, deadline %t, ended %t; want one, bounded by the handshake", src.calls.Load(), src.hadDeadline.Load(), src.ended.Load())
	}
}

// updateFixture is a group of five (A..E, epoch 0) and a successor that
// drops B: A, C, D are kept (C moves from index 2 to 1) and F is added.
type updateFixture struct {
	p      *sim.Platform
	g0, g1 *mage.SignedGroup
}

func newUpdateFixture(t *testing.T) *updateFixture {
	p, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ms := meshInputs(t, 6)
	upd := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	g0, err := mage.SignGroup(t.Context(), ms[:5], mage.SignOptions{Date: date, Merkle: true, UpdateKey: upd.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	keep := []*mage.LineageProof{g0.LineageProofs[0], g0.LineageProofs[2], g0.LineageProofs[3]}
	g1, err := mage.SignGroup(t.Context(), ms[5:], mage.SignOptions{Date: date, Merkle: true,
		Successor: &mage.Successor{Lineage: g0.Lineage, Key: upd, Keep: keep}})
	if err != nil {
		t.Fatal(err)
	}
	return &updateFixture{p: p, g0: g0, g1: g1}
}

// TestPolicyAcrossEpochs: a policy written at epoch 0 selects members by
// MRENCLAVE, so after an update that drops B and moves C to B's index,
// it never admits C (or anyone else) in B's place.
func TestPolicyAcrossEpochs(t *testing.T) {
	u := newUpdateFixture(t)
	mrB := u.g0.Members[1].MRENCLAVE
	onlyB := Policy{MRENCLAVE: []sgx.Measurement{mrB}}
	a := simMember(t, u.p, u.g0.Members[0].File, Config{Lineage: u.g1.LineageProofs[0], Policy: onlyB})
	c := simMember(t, u.p, u.g0.Members[2].File, Config{Lineage: u.g1.LineageProofs[1]})
	if c.Index() != 1 {
		t.Fatalf("C is at index %d in the successor, want 1 (B's old index)", c.Index())
	}
	if _, _, cerr, serr := pair(t, c, a); !errors.Is(serr, ErrPolicy) || cerr == nil {
		t.Errorf("C at B's old index, against a policy for B: %v / %v", cerr, serr)
	}
	b := simMember(t, u.p, u.g0.Members[1].File, Config{Lineage: u.g0.LineageProofs[1]})
	if _, _, cerr, serr := pair(t, b, a); !errors.Is(serr, mage.ErrStale) || cerr == nil {
		t.Errorf("dropped B: %v / %v", cerr, serr)
	}
	// At epoch 0 the same policy admits B.
	a0 := simMember(t, u.p, u.g0.Members[0].File, Config{Lineage: u.g0.LineageProofs[0], Policy: onlyB})
	b0 := simMember(t, u.p, u.g0.Members[1].File, Config{Lineage: u.g0.LineageProofs[1]})
	if _, sc, cerr, serr := pair(t, b0, a0); cerr != nil || serr != nil || sc.Peer().Identity.MRENCLAVE != mrB {
		t.Errorf("B at epoch 0: %v / %v", cerr, serr)
	}
}

// TestLineageStore: a member persists the newest lineage it verified, and
// a restart whose host hands it an older lineage proof still knows the
// newer epoch (and refuses the members it dropped). A store it cannot
// verify stops it from starting.
func TestLineageStore(t *testing.T) {
	u := newUpdateFixture(t)
	path := filepath.Join(t.TempDir(), "a.lineage")
	store := LineageFile(path)
	a := simMember(t, u.p, u.g0.Members[0].File, Config{Lineage: u.g0.LineageProofs[0], LineageStore: store})
	if b, err := os.ReadFile(path); err != nil || len(b) == 0 {
		t.Fatalf("the store after start: %v", err)
	}
	// It learns epoch 1 from the new member F.
	f := simMember(t, u.p, u.g1.Members[0].File, Config{Lineage: u.g1.LineageProofs[3]})
	pair(t, f, a)
	if a.Epoch() != 1 {
		t.Fatalf("A at epoch %d after meeting F", a.Epoch())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file: %v %v", fi, err)
	}
	// Restarted with its old proof (the host rolls it back), it still
	// knows epoch 1 and refuses B.
	again := simMember(t, u.p, u.g0.Members[0].File, Config{Lineage: u.g0.LineageProofs[0], LineageStore: store})
	if again.Epoch() != 1 {
		t.Fatalf("after a restart with the store: epoch %d, want 1", again.Epoch())
	}
	b := simMember(t, u.p, u.g0.Members[1].File, Config{Lineage: u.g0.LineageProofs[1]})
	if _, _, _, serr := pair(t, b, again); !errors.Is(serr, mage.ErrStale) {
		t.Errorf("the restarted member and the dropped B: %v", serr)
	}
	// Without the store, the same restart is rolled back.
	if m := simMember(t, u.p, u.g0.Members[0].File, Config{Lineage: u.g0.LineageProofs[0]}); m.Epoch() != 0 {
		t.Errorf("without a store: epoch %d", m.Epoch())
	}
	// A store holding a lineage with a forged statement, another group's
	// lineage, or garbage, refuses to start.
	forged := &mage.Lineage{Tables: u.g1.Lineage.Tables, Statements: [][]byte{make([]byte, 64)}}
	otherG, err := mage.SignGroup(t.Context(), meshInputs(t, 2), mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Merkle: true, UpdateKey: ed25519.NewKeyFromSeed([]byte("another group's update key 32 by")).Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"forged statement": forged.Marshal(), "another group": otherG.Lineage.Marshal(), "garbage": []byte("not a lineage")} {
		bad := LineageFile(filepath.Join(t.TempDir(), "bad"))
		bad.Store(data)
		e, err := u.p.Load(t.Context(), u.g0.Members[0].File, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewMember(Config{Backend: NewSimBackend(e), InsecureSimulationRoot: u.p.RootCertificate(), Lineage: u.g0.LineageProofs[0], LineageStore: bad}); !errors.Is(err, ErrConfig) {
			t.Errorf("%s in the store: %v", name, err)
		}
	}
}
