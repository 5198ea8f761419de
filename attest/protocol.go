package attest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

// Protocol constants.
const (
	protocolVersion = 1
	exporterLabel   = "EXPORTER-mage-attested-tls-v1"
	maxMessage      = 64 << 10 // bytes; a quote with its chain is about 5 KiB

	msgHello    = 1
	msgEvidence = 2
	msgVerdict  = 3

	roleClient = "client"
	roleServer = "server"
)

// ServerTLSConfig returns the TLS configuration of this member as a server:
// TLS 1.3, its ephemeral certificate, and a client certificate required.
// Certificates are not checked by PKI: the attestation exchange that
// follows the handshake authenticates the peer. The configuration alone
// authenticates nobody; use it only through Server, NewListener or a
// transport that runs Conn.Handshake (such as examples/grpccreds).
func (m *Member) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{m.cert},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: checkPeerCertificate,
	}
}

// ClientTLSConfig returns the TLS configuration of this member as a client.
// Like ServerTLSConfig, it must be used through Client, Dial or DialContext,
// which run the attestation exchange.
func (m *Member) ClientTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{m.cert},
		InsecureSkipVerify:    true, // authenticated by the attestation exchange
		VerifyPeerCertificate: checkPeerCertificate,
	}
}

func checkPeerCertificate(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) != 1 {
		return fmt.Errorf("%w: peer sent %d certificates, want 1", ErrProtocol, len(raw))
	}
	_, err := x509.ParseCertificate(raw[0])
	return err
}

// Conn is an attested TLS connection between two group members. The
// attestation runs on the first Read or Write, or on Handshake.
type Conn struct {
	*tls.Conn
	m    *Member
	role string
	once sync.Once
	err  error
	peer *Peer
}

// Server wraps an accepted connection as the server side.
func (m *Member) Server(c net.Conn) *Conn {
	return &Conn{Conn: tls.Server(c, m.ServerTLSConfig()), m: m, role: roleServer}
}

// Client wraps a dialed connection as the client side.
func (m *Member) Client(c net.Conn) *Conn {
	return &Conn{Conn: tls.Client(c, m.ClientTLSConfig()), m: m, role: roleClient}
}

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
	return c.Conn.Read(b)
}

// Write attests first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Peer returns the attested peer, or nil before a successful handshake.
func (c *Conn) Peer() *Peer {
	if c.err != nil {
		return nil
	}
	return c.peer
}

func (c *Conn) handshake(ctx context.Context) (err error) {
	deadline := time.Now().Add(c.m.cfg.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.Conn.SetDeadline(deadline)
	defer c.Conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.Conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		if err != nil {
			c.Conn.Close()
		}
	}()
	if err := c.Conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("attest: TLS handshake: %w", err)
	}
	st := c.Conn.ConnectionState()
	ekm, err := st.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return fmt.Errorf("attest: TLS exporter: %w", err)
	}
	peerSPKI := sha256.Sum256(st.PeerCertificates[0].RawSubjectPublicKeyInfo)
	peerRole := roleServer
	if c.role == roleServer {
		peerRole = roleClient
	}

	// 1. Hello: version, evidence kind, TARGETINFO. The client speaks
	// first; a server configured with no evidence kind answers in the
	// client's kind.
	kind := c.m.cfg.Evidence
	hello := func(k Kind) []byte {
		return append([]byte{protocolVersion, byte(k)}, c.m.cfg.Backend.TargetInfo().Marshal()...)
	}
	var ph []byte
	if c.role == roleClient {
		if kind == 0 {
			kind = Remote
		}
		if err := writeMsg(c.Conn, msgHello, hello(kind)); err != nil {
			return err
		}
		if ph, err = readMsg(c.Conn, msgHello); err != nil {
			return err
		}
	} else {
		if ph, err = readMsg(c.Conn, msgHello); err != nil {
			return err
		}
		if kind == 0 && len(ph) > 1 {
			kind = Kind(ph[1])
		}
		if err := writeMsg(c.Conn, msgHello, hello(kind)); err != nil {
			return err
		}
	}
	if len(ph) != 2+sgx.TargetInfoSize || ph[0] != protocolVersion {
		return fmt.Errorf("%w: bad hello (%d bytes, version %d)", ErrProtocol, len(ph), firstByte(ph))
	}
	peerKind := Kind(ph[1])
	peerTI, _ := sgx.ParseTargetInfo(ph[2:])

	// 2. Evidence bound to the session, our role and our key.
	ev, err := c.m.evidence(ctx, kind, reportData(ekm, c.role, c.m.spki), peerTI)
	if err != nil {
		return err
	}
	if err := writeMsg(c.Conn, msgEvidence, ev); err != nil {
		return err
	}
	pev, err := readMsg(c.Conn, msgEvidence)
	if err != nil {
		return err
	}

	// 3. Verify the peer's, send our verdict, read theirs.
	peer, verr := c.m.verify(peerKind, pev, reportData(ekm, peerRole, peerSPKI))
	verdict := []byte{1}
	if verr != nil {
		verdict = append([]byte{0}, []byte(verr.Error())...)
	}
	if err := writeMsg(c.Conn, msgVerdict, verdict); err != nil && verr == nil {
		return err
	}
	if verr != nil {
		return verr
	}
	pv, err := readMsg(c.Conn, msgVerdict)
	if err != nil {
		return err
	}
	if len(pv) == 0 || pv[0] != 1 {
		return fmt.Errorf("%w: %s", ErrPeerRefused, pv[min(1, len(pv)):])
	}
	c.peer = peer
	return nil
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
	case Local:
		r, err := m.cfg.Backend.Report(peerTI, data)
		if err != nil {
			return nil, fmt.Errorf("attest: making a report: %w", err)
		}
		return r.Marshal(), nil
	}
	return nil, fmt.Errorf("%w: unknown evidence kind %d", ErrProtocol, kind)
}

// verify checks the peer's evidence, its binding, and the policy.
func (m *Member) verify(kind Kind, ev []byte, want [sgx.ReportDataSize]byte) (*Peer, error) {
	var body *sgx.ReportBody
	switch kind {
	case Remote:
		q, err := dcap.ParseQuote(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
		}
		switch {
		case m.cfg.Collateral != nil:
			if _, err := dcap.Verify(ev, m.cfg.Collateral, dcap.Options{Root: m.cfg.Root, Time: m.cfg.Now(), Accept: m.cfg.AcceptTCB}); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
			}
		case m.cfg.Root == nil:
			return nil, ErrNoCollateral
		default:
			if _, _, err := m.quotes.VerifySignatures(q, m.cfg.Now()); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
			}
		}
		body = &q.Body
	case Local:
		r, err := sgx.ParseReport(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
		}
		b, err := m.cfg.Backend.VerifyReport(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
		}
		body = b
	default:
		return nil, fmt.Errorf("%w: unknown evidence kind %d", ErrProtocol, kind)
	}
	if body.ReportData != want {
		return nil, ErrBinding
	}
	return m.checkPolicy(body, kind)
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
		return nil, fmt.Errorf("%w: reading message %d: %v", ErrProtocol, want, err)
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
		return nil, fmt.Errorf("%w: truncated message %d: %v", ErrProtocol, want, err)
	}
	return b, nil
}

// Dial connects to addr and attests as the client.
func (m *Member) Dial(ctx context.Context, network, addr string) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := m.Client(raw)
	if err := c.Handshake(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// DialContext is Dial returning a net.Conn, for http.Transport's
// DialTLSContext.
func (m *Member) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := m.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listener accepts attested connections from group members.
type Listener struct {
	net.Listener
	m *Member
}

// NewListener wraps a listener: Accept returns *Conn values whose
// attestation runs on first use (or on Handshake), so one slow peer does
// not hold up the others.
func (m *Member) NewListener(l net.Listener) *Listener { return &Listener{Listener: l, m: m} }

// Accept returns the next connection, as a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.m.Server(c), nil
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
// came on, or nil.
func PeerFromContext(ctx context.Context) *Peer {
	c, _ := ctx.Value(ctxKey{}).(*Conn)
	if c == nil {
		return nil
	}
	return c.Peer()
}
