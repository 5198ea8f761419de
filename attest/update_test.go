package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sim"
)

// TestRollingUpdateAttestation: a group of five is succeeded by a group
// that keeps members 0-2, drops 3 and 4 and adds a new member. Old and
// new members attest each other both ways (an old member whose host was
// not given the successor learns it from the new member), and every member
// that knows the successor refuses a dropped member. (Issue 14.)
func TestRollingUpdateAttestation(t *testing.T) {
	p, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ms := meshInputs(t, 6)
	upd := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	g0, err := mage.SignGroup(t.Context(), ms[:5], mage.SignOptions{Date: date, Merkle: true, UpdateKey: upd.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	g1, err := mage.SignGroup(t.Context(), ms[5:], mage.SignOptions{Date: date, Merkle: true,
		Successor: &mage.Successor{Lineage: g0.Lineage, Key: upd, Keep: g0.LineageProofs[:3]}})
	if err != nil {
		t.Fatal(err)
	}
	member := func(file []byte, lp *mage.LineageProof) *Member {
		t.Helper()
		return simMember(t, p, file, Config{Lineage: lp})
	}
	old0 := member(g0.Members[0].File, g0.LineageProofs[0]) // its host has not been given the successor
	old1 := member(g0.Members[1].File, g1.LineageProofs[1]) // its host has
	old2 := member(g0.Members[2].File, g0.LineageProofs[2])
	dropped := member(g0.Members[3].File, g0.LineageProofs[3])
	updated := member(g1.Members[0].File, g1.LineageProofs[3])
	if old0.Epoch() != 0 || old1.Epoch() != 1 || updated.Epoch() != 1 || updated.Index() != 3 {
		t.Fatalf("epochs %d %d %d, new member at %d", old0.Epoch(), old1.Epoch(), updated.Epoch(), updated.Index())
	}

	// Before anyone it meets knows the successor, the dropped member is
	// still a member of epoch 0.
	if _, _, cerr, serr := pair(t, dropped, old2); cerr != nil || serr != nil {
		t.Fatalf("dropped member and an epoch-0 member: %v / %v", cerr, serr)
	}
	// An old member whose host has not been given the successor accepts
	// the new member (and learns the successor), but it cannot prove it
	// is still a member: the new member refuses it until its host hands it
	// its proof in the successor.
	_, _, cerr, serr := pair(t, updated, old0)
	if !errors.Is(cerr, mage.ErrStale) || !errors.Is(serr, ErrPeerRefused) || old0.Epoch() != 1 {
		t.Fatalf("new -> old member with its epoch-0 proof: %v / %v, epoch %d", cerr, serr, old0.Epoch())
	}
	if err := old0.SetLineage(g0.LineageProofs[0]); !errors.Is(err, mage.ErrStale) {
		t.Fatalf("setting an older lineage proof: %v", err)
	}
	if err := old0.SetLineage(g1.LineageProofs[1]); !errors.Is(err, mage.ErrUntrustedTable) {
		t.Fatalf("setting another member's lineage proof: %v", err)
	}
	if err := old0.SetLineage(g1.LineageProofs[0]); err != nil {
		t.Fatal(err)
	}
	if err := old2.SetLineage(g1.LineageProofs[2]); err != nil {
		t.Fatal(err)
	}
	// Old and new, both ways.
	for _, c := range []struct {
		name string
		a, b *Member
	}{{"old->new", old0, updated}, {"new->old", updated, old1}, {"new->old (updated at run time)", updated, old2}} {
		cc, sc, cerr, serr := pair(t, c.a, c.b)
		if cerr != nil || serr != nil {
			t.Fatalf("%s: %v / %v", c.name, cerr, serr)
		}
		if cc.Peer().Epoch != 1 || sc.Peer().Epoch != 1 || cc.Peer().Index != c.b.Index() || sc.Peer().Index != c.a.Index() {
			t.Errorf("%s: peers %+v / %+v", c.name, cc.Peer(), sc.Peer())
		}
	}
	// Every member that knows the successor refuses the dropped member.
	for name, m := range map[string]*Member{"new": updated, "updated old": old1, "old that learned": old0} {
		_, _, cerr, serr := pair(t, dropped, m)
		refused(t, "dropped member -> "+name, cerr, serr, ErrNotInGroup)
	}
	// A lineage proof is refused where the table has no update key, and
	// an updatable member needs one.
	plain := signedMesh(t, 3, true)
	cfg := plain[0].cfg
	cfg.Proof, cfg.Lineage = nil, g1.LineageProofs[0]
	if _, err := NewMember(cfg); !errors.Is(err, ErrNotMember) {
		t.Errorf("a lineage proof in a plain Merkle group: %v", err)
	}
	cfg = old0.cfg
	cfg.Lineage = nil
	if _, err := NewMember(cfg); !errors.Is(err, ErrNotMember) {
		t.Errorf("an updatable member without its lineage proof: %v", err)
	}
	_, _, cerr, serr = pair(t, plain[0], updated)
	if cerr == nil || serr == nil {
		t.Error("a plain Merkle member and an updatable member accepted each other")
	}
}

// simMember loads a signed member on the simulated platform p and makes
// it a Member with cfg (its Backend and simulation root filled in).
func simMember(tb testing.TB, p *sim.Platform, file []byte, cfg Config) *Member {
	tb.Helper()
	e, err := p.Load(context.Background(), file, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Backend, cfg.InsecureSimulationRoot = NewSimBackend(e), p.RootCertificate()
	m, err := NewMember(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
