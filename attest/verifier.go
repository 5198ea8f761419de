package attest

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sgx"
)

// VerifierConfig configures a Verifier. Exactly one of TrustMember and
// Group says which group the Verifier trusts.
type VerifierConfig struct {
	// TrustMember pins the group by one member's MRENCLAVE: the peer sends
	// its .sgx_mage table, which is accepted only if it derives this
	// measurement for one of its entries (mage.Trust). That proves the
	// table authentic, and the peer must then be one of its members.
	TrustMember sgx.Measurement
	// Group pins every member's MRENCLAVE, in table order (for example
	// from a group manifest written by group signing).
	Group []sgx.Measurement
	// Collateral, AcceptTCB and InsecureSimulationRoot verify quotes as
	// Config's fields of the same names do.
	Collateral             dcap.CollateralSource
	AcceptTCB              []dcap.TCBStatus
	InsecureSimulationRoot *x509.Certificate
	// Policy restricts the members accepted. A Verifier checks remote
	// evidence only (a REPORT can be checked only by its target enclave).
	Policy Policy
	// HandshakeTimeout bounds the TLS handshake and the attestation
	// exchange (default 10s).
	HandshakeTimeout time.Duration
	// Now gives the time certificates are checked at (default time.Now).
	Now func() time.Time
}

// Verifier is a relying party that is not a member of the group: a CLI
// tool, a monitoring service, a client outside SGX. It verifies a member's
// remote evidence and proves nothing itself, so it reaches only members
// that set Config.AllowUnattestedVerifiers.
type Verifier struct {
	cfg   VerifierConfig
	id    identity
	check *checker
}

// NewVerifier checks the configuration and makes a fresh TLS key.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	pinned := cfg.TrustMember != (sgx.Measurement{})
	switch {
	case pinned && cfg.Group != nil:
		return nil, fmt.Errorf("%w: set one of VerifierConfig.TrustMember and Group, not both", ErrConfig)
	case !pinned && len(cfg.Group) == 0:
		return nil, fmt.Errorf("%w: VerifierConfig needs TrustMember or Group: a verifier must know which group it trusts", ErrConfig)
	}
	if cfg.Policy.AcceptKinds == nil {
		cfg.Policy.AcceptKinds = []Kind{Remote}
	}
	if slices.Contains(cfg.Policy.AcceptKinds, Local) {
		return nil, fmt.Errorf("%w: a Verifier cannot check Local evidence", ErrConfig)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Group = slices.Clone(cfg.Group)
	ck, err := newChecker(cfg.Collateral, cfg.AcceptTCB, cfg.InsecureSimulationRoot, cfg.Now, cfg.Policy)
	if err != nil {
		return nil, err
	}
	if !ck.canVerifyQuotes() {
		return nil, fmt.Errorf("%w: the verifier could never verify a quote: set Collateral (Intel quotes) or InsecureSimulationRoot (simulated platform)", ErrConfig)
	}
	v := &Verifier{cfg: cfg, check: ck}
	if v.id, err = newIdentity("mage verifier"); err != nil {
		return nil, err
	}
	return v, nil
}

// Dial connects to a member at addr and verifies it.
func (v *Verifier) Dial(ctx context.Context, network, addr string) (*Conn, error) {
	return dial(ctx, v, network, addr)
}

// DialContext is Dial returning a net.Conn, for http.Transport's
// DialTLSContext (see PeerTrace to learn which member answered).
func (v *Verifier) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return v.Dial(ctx, network, addr)
}

// Client wraps a dialed connection as the client side.
func (v *Verifier) Client(c net.Conn) *Conn { return newConn(v, c, roleClient) }

// Server wraps an accepted connection as the server side: members that
// connect prove themselves to the verifier (they must set
// Config.AllowUnattestedVerifiers).
func (v *Verifier) Server(c net.Conn) *Conn { return newConn(v, c, roleServer) }

// NewListener wraps a listener whose connections are verified as Server.
func (v *Verifier) NewListener(l net.Listener) *Listener { return &Listener{Listener: l, s: v} }

func (v *Verifier) identity() *identity    { return &v.id }
func (v *Verifier) timeout() time.Duration { return v.cfg.HandshakeTimeout }
func (v *Verifier) kind(string, Kind) Kind { return 0 }
func (v *Verifier) targetInfo() []byte     { return make([]byte, sgx.TargetInfoSize) }
func (v *Verifier) section() []byte        { return nil }
func (v *Verifier) proof() []byte          { return nil }
func (v *Verifier) allowUnattested() bool  { return false }

func (v *Verifier) prove(context.Context, Kind, [sgx.ReportDataSize]byte, *sgx.TargetInfo) ([]byte, error) {
	return nil, fmt.Errorf("%w: a verifier has no evidence", ErrProtocol)
}

func (v *Verifier) verifyPeer(ctx context.Context, kind Kind, ev []byte, want [sgx.ReportDataSize]byte, section, _ []byte) (*Peer, error) {
	if kind != Remote {
		return nil, fmt.Errorf("%w: %s (a verifier checks quotes only)", ErrKindRefused, kind)
	}
	body, err := v.check.quote(ctx, ev)
	if err != nil {
		return nil, err
	}
	if body.ReportData != want {
		return nil, ErrBinding
	}
	g, err := v.groupOf(section)
	if err != nil {
		return nil, err
	}
	return v.check.policyCheck(g, body, kind)
}
