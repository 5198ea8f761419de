package attest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/sim"
)

const vectors = "../testdata/sgxsdk"

func read(t testing.TB, p string) []byte {
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	p *sim.Platform
}

func newFixture(t testing.TB) *fixture {
	p, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{p: p}
}

func (f *fixture) member(t testing.TB, file []byte, kind Kind, mod func(*Config)) *Member {
	e, err := f.p.Load(context.Background(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Backend: NewSimBackend(e), Evidence: kind, InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewMember(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) g1(t testing.TB, i int, kind Kind) *Member {
	return f.member(t, read(t, []string{"signed/g1_v0.signed.so", "signed/g1_v1.signed.so", "signed/g1_v2.signed.so"}[i]), kind, nil)
}

// pair connects a client and a server member over loopback and runs both
// handshakes; it returns both sides' errors and connections.
func pair(t testing.TB, client interface {
	Dial(context.Context, string, string) (*Conn, error)
}, server *Member) (cc, sc *Conn, cerr, serr error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		raw, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		sc = server.Server(raw)
		serr = sc.Handshake(context.Background())
	})
	cc, cerr = client.Dial(context.Background(), "tcp", ln.Addr().String())
	wg.Wait()
	return
}

func TestMutualAttestation(t *testing.T) {
	f := newFixture(t)
	for _, kind := range []Kind{Remote, Local} {
		a, b := f.g1(t, 0, kind), f.g1(t, 2, kind)
		cc, sc, cerr, serr := pair(t, a, b)
		if cerr != nil || serr != nil {
			t.Fatalf("%s: client %v, server %v", kind, cerr, serr)
		}
		if cc.Peer().Index != 2 || sc.Peer().Index != 0 || cc.Peer().Evidence != kind {
			t.Fatalf("%s: peers %+v %+v", kind, cc.Peer(), sc.Peer())
		}
		go func() { cc.Write([]byte("ping")); cc.Close() }()
		got, _ := io.ReadAll(sc)
		if string(got) != "ping" {
			t.Fatalf("%s: read %q", kind, got)
		}
	}
	if a := f.g1(t, 1, Remote); a.Index() != 1 || len(a.Group()) != 3 {
		t.Fatalf("member index %d, group %d", a.Index(), len(a.Group()))
	}
}

func refused(t *testing.T, name string, cerr, serr error, want error) {
	t.Helper()
	if !errors.Is(cerr, want) && !errors.Is(serr, want) {
		t.Errorf("%s: client %v / server %v, want %v", name, cerr, serr, want)
	}
	if cerr == nil || serr == nil {
		t.Errorf("%s: a side accepted (client %v, server %v)", name, cerr, serr)
	}
}

func TestImpostors(t *testing.T) {
	f := newFixture(t)
	good := f.g1(t, 0, Remote)

	// The same enclave signed outside the group, as a group of its own: it
	// is not in g1.
	key, _ := sgx.LoadSigningKey(read(t, "keys/g1_k1.pem"))
	cfg, _ := sgxsdk.ParseConfig(read(t, "configs/cG1_group_b.config.xml"))
	solo, err := mage.SignGroup(context.Background(), []mage.Member{{ELF: read(t, "enclaves/g1_m1.so"), Config: cfg, Key: key}},
		mage.SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	out := solo.Members[0].File
	outsider := f.member(t, out, Remote, nil)
	_, _, cerr, serr := pair(t, outsider, good)
	refused(t, "outsider", cerr, serr, ErrNotInGroup)

	// A member of another group.
	g2 := f.member(t, read(t, "signed/g2_v3.signed.so"), Remote, nil)
	_, _, cerr, serr = pair(t, good, g2)
	refused(t, "other group", cerr, serr, ErrNotInGroup)

	// A DEBUG launch of a real member.
	dbgEnc, err := f.p.Load(context.Background(), read(t, "signed/g1_v2.signed.so"), &sim.LoadOptions{Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	dbg, err := NewMember(Config{Backend: NewSimBackend(dbgEnc), InsecureSimulationRoot: f.p.RootCertificate()})
	if err != nil {
		t.Fatal(err)
	}
	_, _, cerr, serr = pair(t, dbg, good)
	refused(t, "debug", cerr, serr, ErrPolicy)
	// ... accepted where policy allows DEBUG.
	lax := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) { c.Policy.AllowDebug = true })
	if _, _, cerr, serr = pair(t, dbg, lax); serr != nil {
		t.Errorf("debug peer with AllowDebug: %v", serr)
	}

	// Policy: MRENCLAVEs, MRSIGNER, ISVSVN.
	only2 := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) { c.Policy.MRENCLAVE = []sgx.Measurement{good.Group()[1]} })
	_, _, cerr, serr = pair(t, good, only2)
	refused(t, "MRENCLAVE", cerr, serr, ErrPolicy)
	only0 := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) { c.Policy.MRENCLAVE = []sgx.Measurement{good.Identity().MRENCLAVE} })
	if _, _, _, serr = pair(t, good, only0); serr != nil {
		t.Errorf("a peer the policy lists: %v", serr)
	}
	svn := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) { c.Policy.MinISVSVN = 5 })
	_, _, cerr, serr = pair(t, good, svn)
	refused(t, "min ISVSVN", cerr, serr, ErrPolicy)
	signer := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) { c.Policy.MRSIGNER = []sgx.Measurement{{1}} })
	_, _, cerr, serr = pair(t, good, signer)
	refused(t, "MRSIGNER", cerr, serr, ErrPolicy)
}

func TestWrongRootAndExpiry(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	a := f.g1(t, 0, Remote)
	b := f.member(t, read(t, "signed/g1_v1.signed.so"), Remote, func(c *Config) { c.InsecureSimulationRoot = other.p.RootCertificate() })
	_, _, cerr, serr := pair(t, a, b)
	refused(t, "wrong root", cerr, serr, ErrEvidence)
	late := f.member(t, read(t, "signed/g1_v2.signed.so"), Remote, func(c *Config) {
		c.Now = func() time.Time { return time.Now().AddDate(30, 0, 0) }
	})
	_, _, cerr, serr = pair(t, a, late)
	refused(t, "expired certificates", cerr, serr, ErrEvidence)
	// Local evidence across platforms fails.
	la := f.g1(t, 0, Local)
	lb := other.member(t, read(t, "signed/g1_v1.signed.so"), Local, nil)
	_, _, cerr, serr = pair(t, la, lb)
	refused(t, "local evidence across platforms", cerr, serr, ErrEvidence)
}

// TestBinding checks that evidence is bound to the session and the key:
// evidence made for one session's exporter value, or with another member's
// certificate key, is refused.
func TestBinding(t *testing.T) {
	f := newFixture(t)
	a, b := f.g1(t, 0, Remote), f.g1(t, 1, Remote)
	ekm1, ekm2 := make([]byte, 32), make([]byte, 32)
	ekm2[0] = 1
	ev, err := a.evidence(context.Background(), Remote, reportData(ekm1, roleClient, a.id.spki), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.verify(context.Background(), Remote, ev, reportData(ekm1, roleClient, a.id.spki)); err != nil {
		t.Fatalf("same session: %v", err)
	}
	if _, err := b.verify(context.Background(), Remote, ev, reportData(ekm2, roleClient, a.id.spki)); !errors.Is(err, ErrBinding) {
		t.Errorf("replayed into another session: %v", err)
	}
	if _, err := b.verify(context.Background(), Remote, ev, reportData(ekm1, roleClient, b.id.spki)); !errors.Is(err, ErrBinding) {
		t.Errorf("A's evidence with B's key: %v", err)
	}
	if _, err := b.verify(context.Background(), Remote, ev, reportData(ekm1, roleServer, a.id.spki)); !errors.Is(err, ErrBinding) {
		t.Errorf("reflected (other role): %v", err)
	}
	for _, n := range []int{0, 10, len(ev) - 1} {
		if _, err := b.verify(context.Background(), Remote, ev[:n], reportData(ekm1, roleClient, a.id.spki)); !errors.Is(err, ErrEvidence) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	if _, err := b.verify(context.Background(), Local, ev[:100], reportData(ekm1, roleClient, a.id.spki)); !errors.Is(err, ErrEvidence) {
		t.Errorf("bad local evidence: %v", err)
	}
}

func TestFraming(t *testing.T) {
	var big strings.Builder
	if err := writeMsg(&big, msgEvidence, make([]byte, maxMessage+1)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized write: %v", err)
	}
	hdr := []byte{msgEvidence, 0xff, 0xff, 0xff, 0xff}
	if _, err := readMsg(strings.NewReader(string(hdr)), msgEvidence); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized read: %v", err)
	}
	if _, err := readMsg(strings.NewReader(string([]byte{msgEvidence, 0, 0, 0, 9, 1})), msgEvidence); !errors.Is(err, ErrProtocol) {
		t.Errorf("truncated read: %v", err)
	}
	if _, err := readMsg(strings.NewReader(string([]byte{msgHello, 0, 0, 0, 0})), msgEvidence); !errors.Is(err, ErrProtocol) {
		t.Errorf("wrong type: %v", err)
	}
}

func TestStallingPeer(t *testing.T) {
	f := newFixture(t)
	a := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(3 * time.Second) // never answers
		}
	}()
	start := time.Now()
	_, err := a.Dial(context.Background(), "tcp", ln.Addr().String())
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled handshake: %v after %v", err, time.Since(start))
	}
}

func TestConcurrentHandshakes(t *testing.T) {
	f := newFixture(t)
	server := f.g1(t, 1, Remote)
	client := f.g1(t, 0, Local)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	l := server.NewListener(ln)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			c, err := client.Dial(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.Write([]byte("x"))
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || c.Peer().Index != 1 {
				errs <- errors.New("echo failed")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRealQuoteThroughVerifier feeds a real Intel-signed quote to a member
// configured with Intel collateral: the quote passes full DCAP verification
// and is then refused only because it is not bound to this session.
func TestRealQuoteThroughVerifier(t *testing.T) {
	f := newFixture(t)
	quote, col, at := realQuote(t)
	m := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
		c.InsecureSimulationRoot, c.Collateral, c.Now = nil, dcap.Fixed{C: col}, at
		c.AcceptTCB = []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}
	})
	if _, err := m.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, ErrBinding) {
		t.Errorf("real quote: %v, want ErrBinding after full verification", err)
	}
	strict := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) { c.InsecureSimulationRoot, c.Collateral, c.Now = nil, dcap.Fixed{C: col}, at })
	if _, err := strict.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, ErrEvidence) || !strings.Contains(err.Error(), "TCB status") {
		t.Errorf("real quote, UpToDate only: %v", err)
	}
	// A member trusting only the simulated root: an Intel quote is not
	// accepted on its signatures alone.
	none := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) { c.Now = at })
	if _, err := none.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, ErrNoCollateral) {
		t.Errorf("real quote without collateral: %v", err)
	}
}

// FuzzPeerMessages feeds arbitrary bytes to the framing and to the
// evidence verifier, as a hostile peer would.
func FuzzPeerMessages(f *testing.F) {
	f.Add([]byte{msgEvidence, 0, 0, 0, 2, 1, 2}, byte(Remote))
	f.Add(make([]byte, sgx.ReportSize), byte(Local))
	if r, err := os.ReadFile("../testdata/snp/attestation.bin"); err == nil {
		f.Add(r, byte(SNPReport))
	}
	if q, err := os.ReadFile("../testdata/tdx/dcap-qvl/tdx_quote"); err == nil {
		f.Add(q, byte(TDQuote))
	}
	fx := newFixture(f)
	m := fx.g1(f, 0, Remote)
	f.Fuzz(func(t *testing.T, b []byte, kind byte) {
		if p, err := readMsg(strings.NewReader(string(b)), msgEvidence); err == nil && len(p) > len(b) {
			t.Fatal("message longer than its input")
		}
		if _, err := m.verify(context.Background(), Kind(kind), b, [64]byte{}); err == nil {
			t.Fatal("arbitrary evidence accepted")
		}
	})
}

func TestRATLSCertificate(t *testing.T) {
	f := newFixture(t)
	a, b := f.g1(t, 0, Remote), f.g1(t, 2, Remote)
	cert, err := a.RATLSCertificate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := b.VerifyRATLSCertificate(context.Background(), cert.Certificate[0])
	if err != nil || peer.Index != 0 {
		t.Fatalf("RA-TLS certificate of member 0: %+v %v", peer, err)
	}
	// The quote moved into a certificate with another key is refused.
	other, _ := b.RATLSCertificate(context.Background())
	x, _ := x509.ParseCertificate(other.Certificate[0])
	var quote []byte
	for _, e := range cert.Leaf.Extensions {
		if e.Id.Equal(OIDGramineQuote) {
			quote = e.Value
		}
	}
	tmpl := *x
	tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDGramineQuote, Value: quote}}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, x.PublicKey, other.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.VerifyRATLSCertificate(context.Background(), der); !errors.Is(err, ErrBinding) {
		t.Errorf("quote under another key: %v", err)
	}
	g2 := f.member(t, read(t, "signed/g2_v3.signed.so"), Remote, nil)
	if _, err := g2.VerifyRATLSCertificate(context.Background(), cert.Certificate[0]); !errors.Is(err, ErrNotInGroup) {
		t.Errorf("other group: %v", err)
	}
	if _, err := b.VerifyRATLSCertificate(context.Background(), b.id.cert.Certificate[0]); !errors.Is(err, ErrEvidence) {
		t.Errorf("certificate without a quote: %v", err)
	}
}
