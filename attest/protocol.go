package attest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/magesgx/mage/sgx"
)

// Protocol constants.
const (
	protocolVersion = 2
	exporterLabel   = "EXPORTER-mage-attested-tls-v1"
	maxMessage      = 64 << 10 // bytes; a quote with its chain is about 5 KiB, a one-page table 4 KiB
	maxPeerText     = 200      // bytes of a peer's refusal text kept in a local error

	// ALPN is the TLS application protocol that attested connections
	// negotiate. A peer that does not offer it (a stock TLS client or
	// server) fails the TLS handshake, so it never reaches an application
	// by accident.
	ALPN = "mage-attested-tls/1"

	msgHello    = 1
	msgEvidence = 2
	msgVerdict  = 3
	msgTable    = 4
	msgProof    = 5 // the sender's membership or lineage proof (empty in a classic group)

	roleClient = "client"
	roleServer = "server"
)

// side is one end of the exchange: a Member (which proves itself and
// verifies) or a Verifier (which only verifies).
type side interface {
	identity() *identity
	timeout() time.Duration
	// kind is the evidence this side sends: as client (peer is 0), or as
	// server answering a client that offered peer. Zero: none.
	kind(role string, peer Kind) Kind
	targetInfo() []byte
	prove(ctx context.Context, kind Kind, data [sgx.ReportDataSize]byte, peerTI *sgx.TargetInfo) ([]byte, error)
	section() []byte
	proof() []byte
	verifyPeer(ctx context.Context, kind Kind, ev []byte, want [sgx.ReportDataSize]byte, section, proof []byte) (*Peer, error)
	allowUnattested() bool
}

// tlsConfig is the TLS configuration of one side of an attested
// connection: TLS 1.3, the side's ephemeral certificate, exactly one peer
// certificate, and the private ALPN value. Certificates are not checked by
// PKI: the attestation exchange that follows authenticates the peer, so
// the configuration is never handed out on its own.
func tlsConfig(id *identity, role string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{id.cert},
		NextProtos:       []string{ALPN},
		VerifyConnection: checkConnection,
	}
	if role == roleServer {
		cfg.ClientAuth = tls.RequireAnyClientCert
	} else {
		cfg.InsecureSkipVerify = true // the key is vouched for by the evidence; VerifyConnection still runs
	}
	return cfg
}

func checkConnection(st tls.ConnectionState) error {
	if st.NegotiatedProtocol != ALPN {
		return fmt.Errorf("%w: peer did not negotiate ALPN %q", ErrProtocol, ALPN)
	}
	if len(st.PeerCertificates) != 1 {
		return fmt.Errorf("%w: peer sent %d certificates, want 1", ErrProtocol, len(st.PeerCertificates))
	}
	return nil
}

// Conn is an attested TLS connection. The attestation runs on the first
// Read or Write, or on Handshake; no method gives the application data
// before both sides have accepted each other.
type Conn struct {
	tc   *tls.Conn
	side side
	role string
	once sync.Once
	err  error

	peer       *Peer
	unattested bool // the peer is a Verifier that presented no evidence

	mu            sync.Mutex
	done          bool // attestation succeeded
	readDeadline  time.Time
	writeDeadline time.Time
}

func newConn(s side, c net.Conn, role string) *Conn {
	cfg := tlsConfig(s.identity(), role)
	if role == roleServer {
		return &Conn{tc: tls.Server(c, cfg), side: s, role: role}
	}
	return &Conn{tc: tls.Client(c, cfg), side: s, role: role}
}

// Server wraps an accepted connection as the server side.
func (m *Member) Server(c net.Conn) *Conn { return newConn(m, c, roleServer) }

// Client wraps a dialed connection as the client side.
func (m *Member) Client(c net.Conn) *Conn { return newConn(m, c, roleClient) }

// Handshake runs the TLS handshake and the attestation exchange, once. It
// returns an error unless both sides accepted each other.
func (c *Conn) Handshake(ctx context.Context) error {
	c.once.Do(func() { c.err = c.handshake(ctx) })
	return c.err
}

// Read attests first if needed.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	return c.tc.Read(b)
}

// Write attests first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	return c.tc.Write(b)
}

// Close closes the connection.
func (c *Conn) Close() error { return c.tc.Close() }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.tc.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

// SetDeadline sets the read and write deadlines. A deadline set before the
// attestation also bounds it, and stays in force after it.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline, c.writeDeadline = t, t
	if c.done {
		return c.tc.SetDeadline(t)
	}
	return nil
}

// SetReadDeadline sets the read deadline (see SetDeadline).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	if c.done {
		return c.tc.SetReadDeadline(t)
	}
	return nil
}

// SetWriteDeadline sets the write deadline (see SetDeadline).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDeadline = t
	if c.done {
		return c.tc.SetWriteDeadline(t)
	}
	return nil
}

// Peer returns the attested peer, or nil before a successful handshake
// and for an unattested verifier (see UnattestedVerifier).
func (c *Conn) Peer() *Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		return nil
	}
	return c.peer
}

// UnattestedVerifier reports whether the peer is a relying party that
// presented no evidence, accepted because Config.AllowUnattestedVerifiers
// is set. Such a peer is not a member: Peer returns nil for it.
func (c *Conn) UnattestedVerifier() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done && c.unattested
}

func (c *Conn) handshake(ctx context.Context) (err error) {
	// The exchange ends at the handshake timeout, the context's deadline,
	// or a deadline the application set already, whichever comes first.
	deadline := time.Now().Add(c.side.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.mu.Lock()
	for _, d := range []time.Time{c.readDeadline, c.writeDeadline} {
		if !d.IsZero() && d.Before(deadline) {
			deadline = d
		}
	}
	c.mu.Unlock()
	c.tc.SetDeadline(deadline)
	// Everything the exchange does, collateral fetches included, ends
	// with it.
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.tc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil {
			err = fmt.Errorf("attest: handshake: %w", context.Cause(ctx))
		}
		if err != nil {
			c.tc.Close()
			return
		}
		// Give the application back the deadlines it set.
		c.mu.Lock()
		c.done = true
		c.tc.SetReadDeadline(c.readDeadline)
		c.tc.SetWriteDeadline(c.writeDeadline)
		c.mu.Unlock()
	}()
	if err := c.tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("attest: TLS handshake: %w", err)
	}
	st := c.tc.ConnectionState()
	ekm, err := st.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return fmt.Errorf("attest: TLS exporter: %w", err)
	}
	peerSPKI := sha256.Sum256(st.PeerCertificates[0].RawSubjectPublicKeyInfo)

	// 1. Hellos: version, evidence kind (0: none, a verifier), TARGETINFO.
	// The client speaks first.
	hello := func(k Kind) []byte { return append([]byte{protocolVersion, byte(k)}, c.side.targetInfo()...) }
	var kind Kind
	var ph []byte
	if c.role == roleClient {
		kind = c.side.kind(roleClient, 0)
		if err := writeMsg(c.tc, msgHello, hello(kind)); err != nil {
			return err
		}
		if ph, err = readMsg(c.tc, msgHello); err != nil {
			return err
		}
	} else {
		if ph, err = readMsg(c.tc, msgHello); err != nil {
			return err
		}
		if len(ph) > 1 {
			kind = c.side.kind(roleServer, Kind(ph[1]))
		}
		if err := writeMsg(c.tc, msgHello, hello(kind)); err != nil {
			return err
		}
	}
	if len(ph) != 2+sgx.TargetInfoSize || ph[0] != protocolVersion {
		return fmt.Errorf("%w: bad hello (%d bytes, version %d, want %d)", ErrProtocol, len(ph), firstByte(ph), protocolVersion)
	}
	peerKind := Kind(ph[1])
	peerTI, err := sgx.ParseTargetInfo(ph[2:])
	if err != nil {
		return fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	if c.role == roleClient && peerKind == 0 {
		// A client never accepts a server that presents no evidence: it
		// stops here, before making evidence or sending anything.
		return fmt.Errorf("%w: the server presents no evidence; a client requires an attested member", ErrUnattested)
	}

	// 2. The client proves itself and the server gives its verdict; only
	// then does the server prove itself, so a server never makes evidence
	// for a peer it has not verified. Then the client gives its verdict.
	mine := reportData(ekm, c.role, c.side.identity().spki)
	theirs := reportData(ekm, otherRole(c.role), peerSPKI)
	for _, prover := range []string{roleClient, roleServer} {
		if prover == c.role {
			if err := c.proveTo(ctx, kind, peerKind, mine, peerTI); err != nil {
				return err
			}
		} else if err := c.checkPeer(ctx, kind, peerKind, theirs); err != nil {
			return err
		}
	}
	return nil
}

// proveTo sends this side's evidence (and its table to a peer that has
// none) and reads the peer's verdict on it.
func (c *Conn) proveTo(ctx context.Context, kind, peerKind Kind, data [sgx.ReportDataSize]byte, peerTI *sgx.TargetInfo) error {
	if kind != 0 {
		ev, err := c.side.prove(ctx, kind, data, peerTI)
		if err != nil {
			return err
		}
		if err := writeMsg(c.tc, msgEvidence, ev); err != nil {
			return err
		}
		if err := writeMsg(c.tc, msgProof, c.side.proof()); err != nil {
			return err
		}
		if peerKind == 0 {
			if err := writeMsg(c.tc, msgTable, c.side.section()); err != nil {
				return err
			}
		}
	}
	pv, err := readMsg(c.tc, msgVerdict)
	if err != nil {
		return err
	}
	if len(pv) == 0 || pv[0] != 1 {
		return fmt.Errorf("%w: %q", ErrPeerRefused, peerText(pv[min(1, len(pv)):]))
	}
	return nil
}

// checkPeer reads and verifies the peer's evidence, and sends the verdict.
func (c *Conn) checkPeer(ctx context.Context, kind, peerKind Kind, want [sgx.ReportDataSize]byte) error {
	var peer *Peer
	var verr error
	switch {
	case peerKind == 0 && kind == 0:
		verr = fmt.Errorf("%w: neither side presents evidence", ErrUnattested)
	case peerKind == 0 && (c.role != roleServer || !c.side.allowUnattested()):
		// Only a member's listener admits relying parties without
		// evidence, and only when asked to: a member dialing out always
		// requires a verified member, whatever its Config says.
		verr = ErrUnattested
	case peerKind == 0:
	default:
		ev, err := readMsg(c.tc, msgEvidence)
		if err != nil {
			return err
		}
		proof, err := readMsg(c.tc, msgProof)
		if err != nil {
			return err
		}
		var section []byte
		if kind == 0 {
			if section, err = readMsg(c.tc, msgTable); err != nil {
				return err
			}
		}
		peer, verr = c.side.verifyPeer(ctx, peerKind, ev, want, section, proof)
	}
	verdict := []byte{1}
	if verr != nil {
		msg := verr.Error()
		verdict = append([]byte{0}, msg[:min(len(msg), 1024)]...)
	}
	if err := writeMsg(c.tc, msgVerdict, verdict); err != nil && verr == nil {
		return err
	}
	if verr != nil {
		return verr
	}
	c.mu.Lock()
	c.peer, c.unattested = peer, peerKind == 0
	c.mu.Unlock()
	return nil
}

// peerText bounds a peer's refusal text before it goes into a local error;
// the caller quotes it, so control characters cannot reach a log.
func peerText(b []byte) string {
	if len(b) > maxPeerText {
		return string(b[:maxPeerText]) + "..."
	}
	return string(b)
}

func otherRole(r string) string {
	if r == roleServer {
		return roleClient
	}
	return roleServer
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// reportData is what evidence commits to: the TLS exporter value of this
// session, the sender's role, and the sender's certificate key.
func reportData(ekm []byte, role string, spki [32]byte) (d [sgx.ReportDataSize]byte) {
	h := sha256.New()
	h.Write([]byte("mage attested TLS v1\x00"))
	h.Write([]byte(role))
	h.Write([]byte{0})
	h.Write(ekm)
	h.Write(spki[:])
	copy(d[:], h.Sum(nil))
	return d
}

// evidence makes this member's evidence: a quote (remote) or a REPORT for
// the peer's TARGETINFO (local).
func (m *Member) evidence(ctx context.Context, kind Kind, data [sgx.ReportDataSize]byte, peerTI *sgx.TargetInfo) ([]byte, error) {
	switch kind {
	case Remote:
		q, err := m.cfg.Backend.Quote(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("attest: making a quote: %w", err)
		}
		return q, nil
	case SNPReport:
		return m.snpEvidence(ctx, data)
	case TDQuote:
		q, err := m.cfg.TDX.TDQuote(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("attest: asking for a TD quote: %w", err)
		}
		return q, nil
	case Local:
		r, err := m.cfg.Backend.Report(peerTI, data)
		if err != nil {
			return nil, fmt.Errorf("attest: making a report: %w", err)
		}
		return r.Marshal(), nil
	}
	return nil, fmt.Errorf("%w: unknown evidence kind %d", ErrProtocol, kind)
}

func writeMsg(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxMessage {
		return fmt.Errorf("%w: message of %d bytes exceeds %d", ErrProtocol, len(payload), maxMessage)
	}
	b := make([]byte, 5, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

func readMsg(r io.Reader, want byte) ([]byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: reading message %d: %w", ErrProtocol, want, err)
	}
	if h[0] != want {
		return nil, fmt.Errorf("%w: message type %d, want %d", ErrProtocol, h[0], want)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxMessage {
		return nil, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrProtocol, n, maxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: truncated message %d: %w", ErrProtocol, want, err)
	}
	return b, nil
}

// Dial connects to addr and attests as the client.
func (m *Member) Dial(ctx context.Context, network, addr string) (*Conn, error) {
	return dial(ctx, m, network, addr)
}

// DialContext is Dial returning a net.Conn, for http.Transport's
// DialTLSContext.
func (m *Member) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return m.Dial(ctx, network, addr)
}

func dial(ctx context.Context, s side, network, addr string) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := newConn(s, raw, roleClient)
	if err := c.Handshake(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Listener accepts attested connections.
type Listener struct {
	net.Listener
	s side
}

// NewListener wraps a listener: Accept returns *Conn values whose
// attestation runs on first use (or on Handshake), so one slow peer does
// not hold up the others.
func (m *Member) NewListener(l net.Listener) *Listener { return &Listener{Listener: l, s: m} }

// Accept returns the next connection, as a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newConn(l.s, c, roleServer), nil
}

type ctxKey struct{}

// ConnContext is for http.Server.ConnContext: it records the connection so
// handlers can learn the peer with PeerFromContext.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if ac, ok := c.(*Conn); ok {
		return context.WithValue(ctx, ctxKey{}, ac)
	}
	return ctx
}

// PeerFromContext returns the attested peer of the connection a request
// came on, or nil (no attested connection, or an unattested verifier).
func PeerFromContext(ctx context.Context) *Peer {
	c, _ := ctx.Value(ctxKey{}).(*Conn)
	if c == nil {
		return nil
	}
	return c.Peer()
}

// PeerTrace returns a context for an HTTP request made through an
// attested transport (DialTLSContext set to a Member's or Verifier's
// DialContext), and a function that returns the attested peer that
// answered it, once the request has been sent (nil if none).
func PeerTrace(ctx context.Context) (context.Context, func() *Peer) {
	var mu sync.Mutex
	var conn *Conn
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if c, ok := i.Conn.(*Conn); ok {
			mu.Lock()
			conn = c
			mu.Unlock()
		}
	}}
	return httptrace.WithClientTrace(ctx, trace), func() *Peer {
		mu.Lock()
		defer mu.Unlock()
		if conn == nil {
			return nil
		}
		return conn.Peer()
	}
}

// Member's side of the exchange.

func (m *Member) identity() *identity    { return &m.id }
func (m *Member) timeout() time.Duration { return m.cfg.HandshakeTimeout }
func (m *Member) allowUnattested() bool  { return m.cfg.AllowUnattestedVerifiers }

// targetInfo is an enclave's TARGETINFO; a VM has none (zeros).
func (m *Member) targetInfo() []byte {
	if m.cfg.Backend == nil {
		return make([]byte, sgx.TargetInfoSize)
	}
	return m.cfg.Backend.TargetInfo().Marshal()
}

func (m *Member) section() []byte {
	if m.cfg.SNP != nil {
		payload, _ := m.cfg.SNP.Table()
		return payload
	}
	if m.cfg.TDX != nil {
		return m.cfg.TDX.Table()
	}
	return m.cfg.Backend.MageSection()
}

func (m *Member) kind(role string, peer Kind) Kind {
	switch {
	case m.cfg.SNP != nil:
		return SNPReport
	case m.cfg.TDX != nil:
		return TDQuote
	case role == roleClient && m.cfg.Evidence != 0:
		return m.cfg.Evidence
	case role == roleClient, peer == 0: // a verifier checks quotes only
		return Remote
	case m.cfg.Evidence != 0:
		return m.cfg.Evidence
	case peer == Local:
		return Local
	}
	return Remote
}

func (m *Member) prove(ctx context.Context, kind Kind, data [sgx.ReportDataSize]byte, peerTI *sgx.TargetInfo) ([]byte, error) {
	return m.evidence(ctx, kind, data, peerTI)
}

func (m *Member) proof() []byte {
	switch lp := m.ownLP.Load(); {
	case lp != nil:
		return lp.Marshal()
	case m.cfg.Proof != nil:
		return m.cfg.Proof.Marshal()
	}
	return nil
}

func (m *Member) verifyPeer(ctx context.Context, kind Kind, ev []byte, want [sgx.ReportDataSize]byte, _, proof []byte) (*Peer, error) {
	return m.verifyWithProof(ctx, kind, ev, want, proof)
}
