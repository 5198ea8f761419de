// Package attest lets the members of a MAGE group authenticate each other
// over TLS with no trusted third party: each member proves its identity
// with SGX evidence bound to the TLS session, and checks its peer's evidence
// against the measurements it derives from its own, measured .sgx_mage
// table.
//
// The protocol (see docs/attested-tls.md): a TLS 1.3 handshake with
// ephemeral self-signed certificates, then one exchange inside the channel.
// Each side sends a hello (protocol version, evidence kind, its TARGETINFO),
// then evidence whose report data commits to the session's exporter value,
// its role and its certificate key, then its verdict on the peer. Remote
// evidence is a DCAP quote (verified against a configured root); local
// evidence is an SGX REPORT targeted at the peer (verified with the peer's
// own report key, so only on the same platform).
package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/snp/snpreport"
)

// Kind is a kind of evidence.
type Kind uint8

// Evidence kinds.
const (
	Remote    Kind = 1 // a DCAP quote: verifiable anywhere the root is trusted
	Local     Kind = 2 // an SGX REPORT: verifiable only on the same platform
	SNPReport Kind = 3 // an SEV-SNP attestation report and its certificate table: a VM member's
	TDQuote   Kind = 4 // an Intel TDX quote: a trust domain member's
)

func (k Kind) String() string {
	switch k {
	case Remote:
		return "remote"
	case Local:
		return "local"
	case SNPReport:
		return "snp"
	case TDQuote:
		return "tdx"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Backend is the enclave side of attestation: what a member's enclave can
// do. The simulated platform provides one (NewSimBackend); a real SGX
// backend implements the same methods.
type Backend interface {
	// Identity returns the enclave's own report body (report data zero).
	Identity() sgx.ReportBody
	// MageSection returns the enclave's loaded .sgx_mage section.
	MageSection() []byte
	// TargetInfo returns the enclave's TARGETINFO.
	TargetInfo() *sgx.TargetInfo
	// Report makes a REPORT for target with the given report data.
	Report(target *sgx.TargetInfo, data [sgx.ReportDataSize]byte) (*sgx.Report, error)
	// VerifyReport checks a REPORT targeted at this enclave.
	VerifyReport(r *sgx.Report) (*sgx.ReportBody, error)
	// Quote returns a DCAP quote of this enclave with the report data.
	Quote(ctx context.Context, data [sgx.ReportDataSize]byte) ([]byte, error)
}

// Policy says which peers a member accepts, beyond "its MRENCLAVE is one of
// the group's".
type Policy struct {
	AllowDebug bool // accept peers with ATTRIBUTES.DEBUG
	// MRENCLAVE accepts only the members with these measurements (nil:
	// every member of the group). Members are selected by what they are,
	// never by their index in a table: an index names another enclave
	// after a successor drops or reorders members, while an MRENCLAVE is
	// one build over one table (a kept member keeps it across epochs).
	MRENCLAVE []sgx.Measurement
	// Launch accepts only the confidential VM members with these launch
	// digests. With MRENCLAVE, Launch or TD set, a member of any kind is
	// accepted only if the list for its kind names it.
	Launch [][48]byte
	// TD accepts only the TDX members with these measurements.
	TD        []mage.TDMeasurement
	MRSIGNER  []sgx.Measurement // accept only these signers (nil: any)
	MinISVSVN uint16            // accept only ISVSVN >= this
	// AcceptKinds lists the evidence kinds accepted (nil: all).
	AcceptKinds []Kind
}

// listsMembers reports whether the policy selects members by what they
// are (MRENCLAVE, Launch or TD set): then a member of any kind is
// accepted only if the list for its kind names it.
func (p Policy) listsMembers() bool {
	return p.MRENCLAVE != nil || p.Launch != nil || p.TD != nil
}

// Config configures a member.
//
// Remote evidence is verified by the root key its PCK chain ends at: a
// quote that chains to the Intel SGX Root CA key is verified in full with
// Collateral (CRLs, TCB Info, QE Identity, TCB status) or refused; a quote
// that chains to InsecureSimulationRoot is verified on its signatures
// alone; any other quote is refused. A member must be able to verify the
// evidence it accepts: NewMember refuses a Config that accepts remote
// evidence with neither Collateral nor InsecureSimulationRoot.
type Config struct {
	// Backend is the member's enclave; SNP instead, for a member that is
	// an SEV-SNP VM.
	Backend Backend
	SNP     SNPBackend
	TDX     TDXBackend
	// SNPVerifier verifies the reports of the group's SEV-SNP members: its
	// roots are AMD's, and a simulated platform's only when named in its
	// InsecureSimulationRoots. NewMember refuses a Config whose group has
	// SNP members and that accepts their evidence without one.
	SNPVerifier *snpreport.Verifier
	// Evidence is the kind of evidence this member sends. Zero means
	// Remote for a client, and the client's kind for a server.
	Evidence Kind
	// Collateral gives Intel's collateral for verifying real quotes (TCB
	// Info, QE Identity, CRLs), used at the time Now gives: a
	// dcap.Cache in front of a PCCS or Intel's PCS keeps a long-running
	// member fresh; dcap.Fixed serves a bundle fetched beforehand. Quotes
	// that chain to the Intel root are refused without it.
	Collateral dcap.CollateralSource
	// AcceptTCB lists the TCB statuses accepted with Collateral (nil:
	// UpToDate only).
	AcceptTCB []dcap.TCBStatus
	// InsecureSimulationRoot is a root that is NOT Intel's, such as the
	// simulated platform's (sim.Platform.RootCertificate): quotes chained to
	// its key are trusted on their signatures alone, with no CRL, TCB level
	// or QE identity. For simulation and tests only. NewMember refuses a
	// certificate with the Intel root's key here.
	InsecureSimulationRoot *x509.Certificate
	// AllowUnattestedVerifiers lets relying parties that present no
	// evidence of their own (a Verifier: a CLI tool, a monitor, a client
	// outside SGX) connect to this member, which then proves itself to them
	// and receives nothing in return. Such connections have no Peer
	// (Conn.Peer returns nil, Conn.UnattestedVerifier returns true), so an
	// application that authorizes by Peer stays safe. Off by default: a
	// member then never produces evidence for a peer it has not verified.
	AllowUnattestedVerifiers bool
	// Policy restricts the peers accepted.
	Policy Policy
	// Libpal is the libpal.so the group's Gramine members run, needed to
	// derive their measurements when the group has any. It need not be
	// trusted: the table records its SHA-256 (for a Gramine member, its
	// own libpal is measured into it).
	Libpal *gramine.Libpal
	// Proof is this member's membership proof when its table is a Merkle
	// table (the proof file group signing wrote beside it). It need not be
	// trusted: NewMember checks that it derives this enclave from the root
	// in its own measured table. Members send it with their evidence.
	Proof *mage.MembershipProof
	// Lineage is this member's lineage proof when its table commits to an
	// update key (the proof file group signing wrote beside it, replaced
	// when a successor group is signed). It need not be trusted either:
	// the tables before the measured one are checked by hash, those after
	// it by the update key's statements. The member accepts peers of any
	// epoch of the group's lineage, keeps the newest table it has seen, and
	// refuses members that table dropped.
	Lineage *mage.LineageProof
	// LineageStore, if set, keeps the newest lineage this member has
	// verified across restarts (LineageFile keeps it in a file): NewMember
	// restores it, checked again from the member's own table, and every
	// newer table the member learns is stored before the handshake that
	// taught it succeeds (a store that fails fails that handshake). Without
	// it, a restarted member knows only what Lineage says, and its host can
	// hand it an older lineage proof.
	LineageStore LineageStore
	// HandshakeTimeout bounds the TLS handshake and the attestation
	// exchange (default 10s).
	HandshakeTimeout time.Duration
	// Now gives the time certificates are checked at (default time.Now).
	Now func() time.Time
}

// GramineBackend is implemented by the Backend of a Gramine enclave, whose
// table is the payload of its manifest's loader.env.MAGE_TABLE rather
// than an .sgx_mage section: it returns the payload and the constants of
// its own manifest (sgx.max_threads, sgx.edmm_enable).
type GramineBackend interface {
	Backend
	MagePayload() (payload []byte, maxThreads int, edmm bool)
}

// Member is a group member ready to attest: its backend, the group's
// measurements derived from its own table, and its TLS key.
type Member struct {
	cfg      Config
	launches [][48]byte                         // the group's VM members' launch digests, by index (zero for enclaves)
	launch   [48]byte                           // this member's own launch digest, if it is a VM
	tds      []mage.TDMeasurement               // the group's TDX members' measurements, by index
	td       mage.TDMeasurement                 // this member's own, if it is a TD
	group    *mage.Group                        // classic tables: every member
	table    *mage.TableDeriver                 // Merkle tables: members are checked by their proofs
	lineage  *mage.LineageVerifier              // updatable Merkle tables: members of any epoch
	ownLP    *atomic.Pointer[mage.LineageProof] // the lineage proof this member sends (shared by copies)
	self     sgx.ReportBody
	id       identity
	check    *checker

	storeMu *sync.Mutex // serializes LineageStore writes (shared by copies)
	stored  *uint32     // the epoch last stored
}

// identity is a side's TLS key: a fresh self-signed certificate and the
// hash of its SubjectPublicKeyInfo, which evidence commits to.
type identity struct {
	cert tls.Certificate
	spki [32]byte // SHA-256 of the certificate's SubjectPublicKeyInfo
}

// Errors of attestation. Failures wrap one of them.
var (
	ErrNotMember    = errors.New("attest: this enclave is not a member of the group its table describes")
	ErrConfig       = errors.New("attest: invalid configuration")
	ErrProtocol     = errors.New("attest: protocol error")
	ErrEvidence     = errors.New("attest: peer evidence invalid")
	ErrBinding      = errors.New("attest: peer evidence is not bound to this TLS session and key")
	ErrNotInGroup   = errors.New("attest: peer is not a member of this group")
	ErrPolicy       = errors.New("attest: peer refused by policy")
	ErrPeerRefused  = errors.New("attest: the peer refused this side")
	ErrKindRefused  = errors.New("attest: evidence kind not accepted")
	ErrNoCollateral = errors.New("attest: quotes chained to the Intel root need collateral (Config.Collateral)")
	ErrUnattested   = errors.New("attest: peer presented no evidence (an unattested verifier) and this side does not allow it")
)

// NewMember prepares a member: it derives every member's MRENCLAVE from the
// backend's own .sgx_mage section (never from host-supplied data), checks
// that the enclave itself is one of them, checks that the configuration
// can verify the evidence it accepts, and makes a fresh TLS key.
func NewMember(cfg Config) (*Member, error) {
	if btoi(cfg.Backend != nil)+btoi(cfg.SNP != nil)+btoi(cfg.TDX != nil) != 1 {
		return nil, fmt.Errorf("%w: set exactly one of Backend (an enclave), SNP (an SEV-SNP VM) and TDX (a TDX trust domain)", ErrConfig)
	}
	switch {
	case cfg.TDX != nil && cfg.Evidence != 0 && cfg.Evidence != TDQuote:
		return nil, fmt.Errorf("%w: a TDX member's evidence is a TD quote, not %s", ErrConfig, cfg.Evidence)
	case cfg.SNP != nil && cfg.Evidence != 0 && cfg.Evidence != SNPReport:
		return nil, fmt.Errorf("%w: an SEV-SNP member's evidence is an SNP report, not %s", ErrConfig, cfg.Evidence)
	case cfg.Backend != nil && cfg.Evidence != 0 && cfg.Evidence != Remote && cfg.Evidence != Local:
		return nil, fmt.Errorf("%w: Evidence is %s, want Remote or Local", ErrConfig, cfg.Evidence)
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ck, err := newChecker(cfg.Collateral, cfg.AcceptTCB, cfg.InsecureSimulationRoot, cfg.Now, cfg.Policy)
	if err != nil {
		return nil, err
	}
	if ck.accepts(Remote) && !ck.canVerifyQuotes() {
		return nil, fmt.Errorf("%w: remote evidence is accepted but could never be verified: set Collateral (Intel quotes) or InsecureSimulationRoot (simulated platform), or accept only Local evidence (Policy.AcceptKinds)", ErrConfig)
	}
	if cfg.SNP != nil || cfg.TDX != nil {
		return newVMMember(cfg, ck)
	}
	self := cfg.Backend.Identity()
	// A member's own table: derive every member and find itself.
	g, d, lv, vms, err := ownGroup(cfg, self.MRENCLAVE)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	if err := checkVMConfig(cfg, ck, vms); err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, group: g, table: d, lineage: lv, self: self, check: ck, launches: vms.launches, tds: vms.tds}
	m.ownLP = new(atomic.Pointer[mage.LineageProof])
	m.ownLP.Store(cfg.Lineage)
	m.storeMu = new(sync.Mutex)
	switch {
	case cfg.LineageStore != nil && lv == nil:
		return nil, fmt.Errorf("%w: a LineageStore is set, but this member's table commits to no update key", ErrConfig)
	case cfg.LineageStore != nil:
		if err := m.restoreLineage(); err != nil {
			return nil, err
		}
	}
	m.id, err = newIdentity(fmt.Sprintf("mage member %d %s", g.Self, self.MRENCLAVE.String()[:16]))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Index returns this member's index in the group table.
func (m *Member) Index() int { return m.group.Self }

// Group returns the measurements of every member, derived from the table;
// nil in a Merkle group, whose members are checked one by one from their
// proofs.
func (m *Member) Group() []sgx.Measurement { return slices.Clone(m.group.Measurements) }

// Identity returns this member's own identity.
func (m *Member) Identity() sgx.ReportBody { return m.self }

func newIdentity(commonName string) (identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return identity{}, err
	}
	cert, err := selfSigned(key, pkix.Name{CommonName: commonName}, []string{"mage-member"}, nil)
	if err != nil {
		return identity{}, err
	}
	return identity{cert: cert, spki: sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)}, nil
}

// selfSigned makes a day-long self-signed certificate for key, for client
// and server authentication, with the given DNS names and extra extensions.
func selfSigned(key *ecdsa.PrivateKey, subject pkix.Name, dnsNames []string, exts []pkix.Extension) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         subject,
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        now.Add(24 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:        dnsNames,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Peer is what a side learned about its attested peer.
type Peer struct {
	// Index is the peer's index in the group table (in an updatable group,
	// the newest), for display only: it names another member after an
	// update. Authorize by Identity (MRENCLAVE), as Policy.MRENCLAVE does.
	Index    int
	Identity sgx.ReportBody // an enclave peer's attested report body (zero for a VM)
	Evidence Kind           // the kind of evidence it presented
	// A VM peer (Evidence SNPReport): its launch digest and its verified
	// report.
	Launch [48]byte
	SNP    *snpreport.Report
	// A TDX peer (Evidence TDQuote): its verified TD report body.
	TD *dcap.TDReportBody
	// In an updatable group: the epoch of the newest table, in which the
	// peer is member Index, and of the table the peer measured.
	Epoch, MeasuredEpoch uint32
}

// SetLineage replaces the lineage proof this member sends, for a running
// member whose host was given a newer one (after a successor group was
// signed that keeps this member). The proof must derive this enclave, in
// a table at least as new as the newest this member knows; the member then
// knows that table too.
func (m *Member) SetLineage(p *mage.LineageProof) error {
	if m.lineage == nil {
		return fmt.Errorf("%w: this member's table commits to no update key", mage.ErrLineage)
	}
	lm, err := m.lineage.Check(p)
	if err != nil {
		return err
	}
	if lm.MRENCLAVE != m.self.MRENCLAVE {
		return fmt.Errorf("%w: the lineage proof is member %d's (%s), not this enclave's %s", mage.ErrUntrustedTable, lm.Index, lm.MRENCLAVE, m.self.MRENCLAVE)
	}
	if err := m.learn(p); err != nil {
		return err
	}
	m.ownLP.Store(p)
	return nil
}

// Epoch returns the epoch of the newest table of the group's lineage this
// member knows (0 in a group without an update key).
func (m *Member) Epoch() uint32 {
	if m.lineage == nil {
		return 0
	}
	return m.lineage.Epoch()
}

// ownGroup derives every member from the backend's own measured table:
// an SDK member's section, or a Gramine member's MAGE_TABLE payload.
func ownGroup(cfg Config, self sgx.Measurement) (*mage.Group, *mage.TableDeriver, *mage.LineageVerifier, vmSet, error) {
	var d *mage.TableDeriver
	var err error
	if gb, ok := cfg.Backend.(GramineBackend); ok {
		payload, threads, edmm := gb.MagePayload()
		d, err = mage.NewPayloadDeriver(payload, mage.GramineConstants{Libpal: cfg.Libpal, MaxThreads: threads, EDMM: edmm})
	} else {
		d, err = mage.NewSectionDeriver(cfg.Backend.MageSection(), cfg.Libpal)
	}
	if err != nil {
		return nil, nil, nil, vmSet{}, err
	}
	switch {
	case d.IsUpdatable():
		if cfg.Lineage == nil {
			return nil, nil, nil, vmSet{}, fmt.Errorf("an updatable group's member needs its lineage proof (Config.Lineage)")
		}
		if cfg.Proof != nil {
			return nil, nil, nil, vmSet{}, fmt.Errorf("an updatable group's member proves itself with Config.Lineage, not Config.Proof")
		}
		lv, me, err := mage.NewLineageVerifier(d, cfg.Lineage)
		if err != nil {
			return nil, nil, nil, vmSet{}, err
		}
		if me.MRENCLAVE != self {
			return nil, nil, nil, vmSet{}, fmt.Errorf("%w: the lineage proof is member %d's (%s), not this enclave's %s", mage.ErrUntrustedTable, me.Index, me.MRENCLAVE, self)
		}
		return &mage.Group{Self: int(me.Index)}, d, lv, vmSet{}, nil
	case cfg.Lineage != nil:
		return nil, nil, nil, vmSet{}, fmt.Errorf("%w: a lineage proof is given, but this member's table commits to no update key", mage.ErrLineage)
	case d.IsMerkle():
		if cfg.Proof == nil {
			return nil, nil, nil, vmSet{}, fmt.Errorf("a Merkle group's member needs its membership proof (Config.Proof)")
		}
		mr, err := d.DeriveProof(cfg.Proof)
		if err != nil {
			return nil, nil, nil, vmSet{}, err
		}
		if mr != self {
			return nil, nil, nil, vmSet{}, fmt.Errorf("%w: the membership proof is member %d's (%s), not this enclave's %s", mage.ErrUntrustedTable, cfg.Proof.Index, mr, self)
		}
		return &mage.Group{Self: int(cfg.Proof.Index)}, d, nil, vmSet{}, nil
	case cfg.Proof != nil:
		return nil, nil, nil, vmSet{}, fmt.Errorf("a membership proof is given, but the table is not a Merkle table")
	}
	g, vms, err := groupOf(d)
	if err != nil {
		return nil, nil, nil, vmSet{}, err
	}
	if g.Self = slices.Index(g.Measurements, self); g.Self < 0 {
		return nil, nil, nil, vmSet{}, fmt.Errorf("%w %s (none of its %d members matches)", mage.ErrUntrustedTable, self, len(g.Measurements))
	}
	return g, nil, nil, vms, nil
}

// vmSet is a flat group's confidential VM members, by member index (nil
// without members of that kind; zeros at other members' indices).
type vmSet struct {
	launches [][48]byte           // SNP members' launch digests
	tds      []mage.TDMeasurement // TDX members' measurements
}

// groupOf derives every member of a flat table: enclaves' MRENCLAVEs and
// VMs' measurements, each list by member index with zeros for the other
// kinds (zero measurements are never accepted from a peer).
func groupOf(d *mage.TableDeriver) (*mage.Group, vmSet, error) {
	all, err := d.DeriveMembers()
	if err != nil {
		return nil, vmSet{}, err
	}
	g := &mage.Group{Self: -1, Measurements: make([]sgx.Measurement, len(all))}
	var vms vmSet
	for i, x := range all {
		g.Measurements[i] = x.MRENCLAVE
		switch x.Kind {
		case mage.KindSNP:
			if vms.launches == nil {
				vms.launches = make([][48]byte, len(all))
			}
			vms.launches[i] = x.Launch
		case mage.KindTDX:
			if vms.tds == nil {
				vms.tds = make([]mage.TDMeasurement, len(all))
			}
			vms.tds[i] = x.TD
		}
	}
	return g, vms, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
