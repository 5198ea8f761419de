package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

// Regression tests for issue 9, items 1 to 8 (attestation that cannot be
// misused).

// countingBackend counts the evidence a member makes.
type countingBackend struct {
	Backend
	quotes, reports atomic.Int32
}

func (b *countingBackend) Quote(ctx context.Context, d [sgx.ReportDataSize]byte) ([]byte, error) {
	b.quotes.Add(1)
	return b.Backend.Quote(ctx, d)
}

func (b *countingBackend) Report(t *sgx.TargetInfo, d [sgx.ReportDataSize]byte) (*sgx.Report, error) {
	b.reports.Add(1)
	return b.Backend.Report(t, d)
}

func (f *fixture) counted(t testing.TB, file string, mod func(*Config)) (*Member, *countingBackend) {
	e, err := f.p.Load(context.Background(), read(t, file), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{Backend: NewSimBackend(e)}
	cfg := Config{Backend: b, InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewMember(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func realQuote(t testing.TB) ([]byte, *dcap.Collateral, func() time.Time) {
	colRaw, err := os.ReadFile("../dcap/testdata/phala-dcap-qvl/sgx_quote_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.ParseCollateralBundle(colRaw)
	if err != nil {
		t.Fatal(err)
	}
	quote, err := os.ReadFile("../dcap/testdata/phala-dcap-qvl/sgx_quote")
	if err != nil {
		t.Fatal(err)
	}
	return quote, col, func() time.Time { return time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC) }
}

// Item 1: the Intel root cannot be trusted on signatures alone, by any
// spelling; Intel quotes are verified with collateral or refused, through
// the handshake and RA-TLS alike.
func TestIntelRootNeedsCollateral(t *testing.T) {
	f := newFixture(t)
	e, err := f.p.Load(context.Background(), read(t, "signed/g1_v0.signed.so"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewMember(Config{Backend: NewSimBackend(e), InsecureSimulationRoot: dcap.IntelRootCA()})
	if !errors.Is(err, ErrConfig) {
		t.Errorf("Intel root as InsecureSimulationRoot: %v, want ErrConfig", err)
	}
	_, err = NewVerifier(VerifierConfig{Group: []sgx.Measurement{{1}}, InsecureSimulationRoot: dcap.IntelRootCA()})
	if !errors.Is(err, ErrConfig) {
		t.Errorf("verifier with the Intel root as InsecureSimulationRoot: %v, want ErrConfig", err)
	}

	quote, col, at := realQuote(t)
	sim := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) { c.Now = at })
	withCol := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
		c.Collateral, c.Now, c.AcceptTCB = dcap.Fixed{C: col}, at, []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}
	})
	for name, tc := range map[string]struct {
		m    *Member
		want error
	}{
		"simulation root only": {sim, ErrNoCollateral},
		"Intel collateral":     {withCol, ErrBinding}, // fully verified, then not bound to this key
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.m.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, tc.want) {
				t.Errorf("handshake path: %v, want %v", err, tc.want)
			}
			der := ratlsWithQuote(t, quote)
			if _, err := tc.m.VerifyRATLSCertificate(context.Background(), der); !errors.Is(err, tc.want) {
				t.Errorf("RA-TLS path: %v, want %v", err, tc.want)
			}
		})
	}
}

// ratlsWithQuote makes an RA-TLS certificate carrying quote under a fresh
// key (so the quote's report data does not bind it).
func ratlsWithQuote(t testing.TB, quote []byte) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := selfSigned(key, pkix.Name{CommonName: "RATLS"}, nil, []pkix.Extension{{Id: OIDGramineQuote, Value: quote}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificate[0]
}

// Item 2: a stock TLS peer (no private ALPN) fails the TLS handshake in
// either role, and the TLS configurations are not exported.
func TestStockTLSPeerRefused(t *testing.T) {
	f := newFixture(t)
	m := f.g1(t, 0, Remote)
	for _, name := range []string{"ServerTLSConfig", "ClientTLSConfig"} {
		if _, ok := reflect.TypeOf(m).MethodByName(name); ok {
			t.Errorf("Member.%s is exported: a bare tls.Config authenticates nobody", name)
		}
	}
	stockKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stock, err := selfSigned(stockKey, pkix.Name{CommonName: "stock"}, []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, alpn := range [][]string{nil, {"h2", "http/1.1"}} {
		// A stock client against a member server.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		var serr error
		var wg sync.WaitGroup
		wg.Go(func() {
			c, err := ln.Accept()
			if err != nil {
				serr = err
				return
			}
			serr = m.Server(c).Handshake(context.Background())
		})
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{stock}, NextProtos: alpn})
		if err == nil {
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			c.Close()
		}
		wg.Wait()
		ln.Close()
		if !errors.Is(serr, ErrProtocol) && !strings.Contains(fmt.Sprint(serr), "application protocol") {
			t.Errorf("stock client with ALPN %v: server %v, want an ALPN refusal", alpn, serr)
		}
		// A member client against a stock server.
		ln, _ = net.Listen("tcp", "127.0.0.1:0")
		go func() {
			c, err := ln.Accept()
			if err == nil {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{stock}, NextProtos: alpn})
				tc.Handshake()
				tc.Close()
			}
		}()
		_, cerr := m.Dial(context.Background(), "tcp", ln.Addr().String())
		ln.Close()
		if cerr == nil {
			t.Errorf("member client accepted a stock server with ALPN %v", alpn)
		}
	}
}

// Item 3: Conn wraps the TLS connection: no method completes TLS without
// attestation, and a refused peer never gets plaintext to or from the
// application.
func TestConnHidesTLS(t *testing.T) {
	typ := reflect.TypeOf(&Conn{})
	for _, name := range []string{"HandshakeContext", "ConnectionState", "NetConn", "VerifyHostname", "OCSPResponse"} {
		if _, ok := typ.MethodByName(name); ok {
			t.Errorf("Conn has method %s of *tls.Conn", name)
		}
	}
	for i := range typ.Elem().NumField() {
		if typ.Elem().Field(i).Anonymous {
			t.Errorf("Conn embeds %s", typ.Elem().Field(i).Type)
		}
	}
	f := newFixture(t)
	good := f.g1(t, 0, Remote)
	outsider := f.member(t, read(t, "signed/g2_v3.signed.so"), Remote, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := good.NewListener(ln).Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c) // must fail: the peer is refused
		got <- b
	}()
	raw, _ := net.Dial("tcp", ln.Addr().String())
	c := outsider.Client(raw)
	if n, err := c.Write([]byte("secret")); err == nil || n != 0 {
		t.Errorf("outsider's Write: %d, %v", n, err)
	}
	if b := <-got; len(b) != 0 {
		t.Errorf("server read %q from a refused peer", b)
	}
	if c.Peer() != nil {
		t.Errorf("Peer after a refused handshake: %+v", c.Peer())
	}
}

// Item 4: NewMember refuses a configuration that could verify no one.
func TestNewMemberRefusesUselessConfig(t *testing.T) {
	f := newFixture(t)
	e, err := f.p.Load(context.Background(), read(t, "signed/g1_v0.signed.so"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		cfg Config
		ok  bool
	}{
		"no root, no collateral":   {Config{Backend: NewSimBackend(e)}, false},
		"empty AcceptKinds":        {Config{Backend: NewSimBackend(e), InsecureSimulationRoot: f.p.RootCertificate(), Policy: Policy{AcceptKinds: []Kind{}}}, false},
		"unknown evidence kind":    {Config{Backend: NewSimBackend(e), InsecureSimulationRoot: f.p.RootCertificate(), Evidence: 7}, false},
		"no backend":               {Config{InsecureSimulationRoot: f.p.RootCertificate()}, false},
		"local only, no root":      {Config{Backend: NewSimBackend(e), Evidence: Local, Policy: Policy{AcceptKinds: []Kind{Local}}}, true},
		"simulation root":          {Config{Backend: NewSimBackend(e), InsecureSimulationRoot: f.p.RootCertificate()}, true},
		"Intel collateral, no sim": {Config{Backend: NewSimBackend(e), Collateral: dcap.Fixed{C: &dcap.Collateral{}}}, true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewMember(tc.cfg)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("NewMember: %v (want ok=%v, or ErrConfig)", err, tc.ok)
			}
		})
	}
}

// Item 5: the server makes no evidence for a client it has not verified:
// not for an outsider, not for an unattested client.
func TestServerProvesSecond(t *testing.T) {
	f := newFixture(t)
	for _, kind := range []Kind{Remote, Local} {
		server, b := f.counted(t, "signed/g1_v1.signed.so", nil)
		outsider := f.member(t, read(t, "signed/g2_v3.signed.so"), kind, nil)
		_, _, cerr, serr := pair(t, outsider, server)
		refused(t, "outsider", cerr, serr, ErrNotInGroup)
		if n := b.quotes.Load() + b.reports.Load(); n != 0 {
			t.Errorf("%s: the server made %d pieces of evidence for an outsider", kind, n)
		}
		good := f.g1(t, 0, kind)
		if _, _, cerr, serr := pair(t, good, server); cerr != nil || serr != nil {
			t.Fatalf("%s: member: %v / %v", kind, cerr, serr)
		}
		if n := b.quotes.Load() + b.reports.Load(); n != 1 {
			t.Errorf("%s: the server made %d pieces of evidence for one verified member", kind, n)
		}
	}
	server, b := f.counted(t, "signed/g1_v1.signed.so", nil)
	v := newVerifier(t, f, func(c *VerifierConfig) { c.Group = server.Group() })
	_, _, cerr, serr := pair(t, v, server)
	refused(t, "unattested verifier", cerr, serr, ErrUnattested)
	if n := b.quotes.Load(); n != 0 {
		t.Errorf("the server quoted %d times for an unattested client it does not allow", n)
	}
}

// Item 6: the handshake keeps the deadlines the application set, as
// http.Server sets ReadHeaderTimeout before the first Read.
func TestHandshakeKeepsDeadlines(t *testing.T) {
	f := newFixture(t)
	client, server := f.g1(t, 0, Local), f.g1(t, 1, Local)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := server.NewListener(ln).Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second)) // before the handshake, as http.Server does
		_, err = c.Read(make([]byte, 1))               // the client attests, then sends nothing
		done <- err
	}()
	cc, err := client.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("server Read: %v, want a timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the read deadline set before the handshake was cleared: Read still blocked")
	}
	// A deadline set after the handshake applies directly.
	cc.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := cc.Read(make([]byte, 1)); err == nil {
		t.Error("read past a deadline set after the handshake succeeded")
	}
}

// Item 7: error chains survive the handshake, and the peer's refusal text
// is bounded and quoted.
func TestErrorChainsAndPeerText(t *testing.T) {
	quote, col, at := realQuote(t)
	f := newFixture(t)
	strict := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) { c.Collateral, c.Now = dcap.Fixed{C: col}, at })
	if _, err := strict.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, dcap.ErrStatusRefused) || !errors.Is(err, ErrEvidence) {
		t.Errorf("TCB status refusal: %v, want both ErrEvidence and dcap.ErrStatusRefused in the chain", err)
	}
	other := newFixture(t)
	a := f.g1(t, 0, Remote)
	b := f.member(t, read(t, "signed/g1_v1.signed.so"), Remote, func(c *Config) { c.InsecureSimulationRoot = other.p.RootCertificate() })
	_, _, _, serr := pair(t, a, b)
	if !errors.Is(serr, ErrEvidence) || !errors.Is(serr, dcap.ErrUntrustedRoot) {
		t.Errorf("untrusted root: %v, want ErrEvidence and dcap.ErrUntrustedRoot", serr)
	}

	// A hostile server refuses with 60 KiB of text and control characters.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	id, _ := newIdentity("hostile")
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		c := tls.Server(raw, tlsConfig(&id, roleServer))
		defer c.Close()
		if _, err := readMsg(c, msgHello); err != nil {
			return
		}
		writeMsg(c, msgHello, append([]byte{protocolVersion, byte(Remote)}, make([]byte, sgx.TargetInfoSize)...))
		readMsg(c, msgEvidence)
		writeMsg(c, msgVerdict, append([]byte{0}, []byte(strings.Repeat("\x1b[2J\r\nFAKE LOG LINE ", 2500))...))
	}()
	_, err := a.Dial(context.Background(), "tcp", ln.Addr().String())
	if !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("hostile refusal: %v", err)
	}
	if msg := err.Error(); len(msg) > 4*maxPeerText+100 || strings.ContainsAny(msg, "\x1b\r\n") {
		t.Errorf("peer text reached the local error unbounded or raw (%d bytes): %.200q", len(msg), msg)
	}
}

func newVerifier(t testing.TB, f *fixture, mod func(*VerifierConfig)) *Verifier {
	cfg := VerifierConfig{InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second}
	mod(&cfg)
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Item 8: a relying party that is not a member verifies a member, pinning
// one member's MRENCLAVE (trust extended through the peer's table) or the
// group's measurements; it learns which member answered, also through an
// http.Client; the member sees no Peer for it.
func TestVerifierOnly(t *testing.T) {
	f := newFixture(t)
	open := func(file string) *Member {
		return f.member(t, read(t, file), Remote, func(c *Config) { c.AllowUnattestedVerifiers = true })
	}
	m2 := open("signed/g1_v2.signed.so")
	g1 := m2.Group()
	g2member := open("signed/g2_v3.signed.so")

	pinned := newVerifier(t, f, func(c *VerifierConfig) { c.TrustMember = g1[0] })
	cc, sc, cerr, serr := pair(t, pinned, m2)
	if cerr != nil || serr != nil {
		t.Fatalf("pinned verifier: %v / %v", cerr, serr)
	}
	if p := cc.Peer(); p == nil || p.Index != 2 || p.Identity.MRENCLAVE != g1[2] {
		t.Errorf("verifier's peer: %+v", p)
	}
	if sc.Peer() != nil || !sc.UnattestedVerifier() {
		t.Errorf("member's view of a verifier: peer %+v, unattested %v", sc.Peer(), sc.UnattestedVerifier())
	}

	byGroup := newVerifier(t, f, func(c *VerifierConfig) { c.Group = g1 })
	if _, _, cerr, serr := pair(t, byGroup, m2); cerr != nil || serr != nil {
		t.Errorf("group-pinned verifier: %v / %v", cerr, serr)
	}
	_, _, cerr, serr = pair(t, pinned, g2member)
	refused(t, "member of another group", cerr, serr, ErrNotInGroup)

	// A member dialing out requires a verified member, even with
	// AllowUnattestedVerifiers: a server that presents no evidence (here a
	// Verifier listening) is refused before the member makes any evidence
	// or sends anything.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := byGroup.NewListener(ln).Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		serverErr <- c.(*Conn).Handshake(context.Background())
	}()
	cb := &countingBackend{}
	dialer := f.member(t, read(t, "signed/g1_v1.signed.so"), Remote, func(c *Config) {
		c.AllowUnattestedVerifiers = true
		cb.Backend = c.Backend
		c.Backend = cb
	})
	mc, err := dialer.Dial(context.Background(), "tcp", ln.Addr().String())
	if !errors.Is(err, ErrUnattested) {
		t.Fatalf("member dialing a server without evidence: %v (conn %v)", err, mc)
	}
	if err := <-serverErr; err == nil {
		t.Error("the evidence-less server's handshake succeeded")
	}
	if n := cb.quotes.Load() + cb.reports.Load(); n != 0 {
		t.Errorf("the member made %d pieces of evidence for a server that presents none", n)
	}

	// Over HTTP: the caller learns which member answered.
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }), ConnContext: ConnContext}
	go srv.Serve(m2.NewListener(hl))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialTLSContext: pinned.DialContext}}
	ctx, answered := PeerTrace(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+hl.Addr().String()+"/", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if p := answered(); string(body) != "hello" || p == nil || p.Index != 2 {
		t.Errorf("HTTP through a verifier: %q, peer %+v", body, p)
	}

	for name, cfg := range map[string]VerifierConfig{
		"nothing pinned":      {InsecureSimulationRoot: f.p.RootCertificate()},
		"both pinned":         {TrustMember: g1[0], Group: g1, InsecureSimulationRoot: f.p.RootCertificate()},
		"no root":             {TrustMember: g1[0]},
		"local evidence":      {TrustMember: g1[0], InsecureSimulationRoot: f.p.RootCertificate(), Policy: Policy{AcceptKinds: []Kind{Local}}},
		"Intel as simulation": {TrustMember: g1[0], InsecureSimulationRoot: dcap.IntelRootCA()},
	} {
		if _, err := NewVerifier(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("NewVerifier(%s): %v, want ErrConfig", name, err)
		}
	}
}

// FuzzVerifierPeer feeds arbitrary evidence and tables to a verifier, as a
// hostile member would: nothing is accepted, nothing panics.
func FuzzVerifierPeer(f *testing.F) {
	f.Add([]byte{1, 2, 3}, make([]byte, 4096))
	f.Add([]byte{}, read(f, "mage/g1.sgx_mage_table.bin"))
	fx := newFixture(f)
	g1 := fx.g1(f, 0, Remote).Group()
	v := newVerifier(f, fx, func(c *VerifierConfig) { c.TrustMember = g1[0] })
	f.Fuzz(func(t *testing.T, ev, section []byte) {
		if _, err := v.verifyPeer(context.Background(), Remote, ev, [64]byte{}, section, nil); err == nil {
			t.Fatal("arbitrary evidence accepted")
		}
		if _, err := v.groupOf(section); err == nil && len(section) > 16*4096 {
			t.Fatal("oversized table accepted")
		}
	})
}
