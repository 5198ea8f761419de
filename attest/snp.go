package attest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/snp/snpreport"
)

// SNPBackend is what a member that is an SEV-SNP VM can do: give the
// group's table it was handed with the kernel command line it booted with
// (the table is its own only if the command line, which its launch
// measured, carries the table's SHA-256), and ask its platform for
// attestation reports (through /dev/sev-guest or configfs-tsm on a real
// VM; sim.SNPGuest in simulation).
type SNPBackend interface {
	// Table returns the table's bytes and the kernel command line
	// (/proc/cmdline).
	Table() (payload []byte, cmdline string)
	// SNPReport returns an attestation report with the report data, and
	// the certificate table of an extended report (nil if none).
	SNPReport(ctx context.Context, data [64]byte) (report, certTable []byte, err error)
}

// SimSNPBackend is the SNPBackend of a VM on a simulated SEV-SNP platform.
type SimSNPBackend struct {
	Guest   *sim.SNPGuest
	Payload []byte
	Cmdline string
}

// Table implements SNPBackend.
func (b *SimSNPBackend) Table() ([]byte, string) { return b.Payload, b.Cmdline }

// SNPReport implements SNPBackend.
func (b *SimSNPBackend) SNPReport(_ context.Context, data [64]byte) ([]byte, []byte, error) {
	return b.Guest.Report(data)
}

// newVMMember prepares a member that is an SEV-SNP VM: its own launch
// digest from a report of its platform, every member derived from the
// table its command line binds, and itself among them.
func newVMMember(cfg Config, ck *checker) (*Member, error) {
	switch {
	case cfg.Proof != nil || cfg.Lineage != nil || cfg.LineageStore != nil:
		return nil, fmt.Errorf("%w: VM members are in flat tables: no membership or lineage proof", ErrConfig)
	case cfg.AllowUnattestedVerifiers:
		return nil, fmt.Errorf("%w: a VM member does not serve unattested verifiers yet", ErrConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HandshakeTimeout)
	defer cancel()
	report, _, err := cfg.SNP.SNPReport(ctx, [64]byte{})
	if err != nil {
		return nil, fmt.Errorf("%w: asking the platform for a report: %w", ErrConfig, err)
	}
	if len(report) != snpreport.ReportSize {
		return nil, fmt.Errorf("%w: the platform's report has %d bytes, want %d", ErrConfig, len(report), snpreport.ReportSize)
	}
	self := [48]byte(report[0x90:0xc0]) // MEASUREMENT: this VM's own, from its own platform
	payload, cmdline := cfg.SNP.Table()
	d, err := mage.NewVMDeriver(payload, cmdline, cfg.Libpal)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	g, launches, err := groupOf(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	if g.Self = slices.Index(launches, self); g.Self < 0 || self == ([48]byte{}) {
		return nil, fmt.Errorf("%w: %w: launch digest %x (none of its %d members matches)", ErrNotMember, mage.ErrUntrustedTable, self, len(g.Measurements))
	}
	if err := checkSNPConfig(cfg, ck, launches); err != nil {
		return nil, err
	}
	if ck.accepts(Remote) && !ck.canVerifyQuotes() && slices.ContainsFunc(g.Measurements, func(m sgx.Measurement) bool { return m != (sgx.Measurement{}) }) {
		return nil, fmt.Errorf("%w: the group's enclaves prove themselves to a VM by quotes: set Collateral or InsecureSimulationRoot", ErrConfig)
	}
	m := &Member{cfg: cfg, group: g, launches: launches, launch: self, check: ck,
		ownLP: new(atomic.Pointer[mage.LineageProof]), storeMu: new(sync.Mutex)}
	if m.id, err = newIdentity(fmt.Sprintf("mage member %d snp %s", g.Self, hex.EncodeToString(self[:8]))); err != nil {
		return nil, err
	}
	return m, nil
}

// checkSNPConfig refuses a member whose group has SNP members whose
// evidence it accepts but could not verify.
func checkSNPConfig(cfg Config, ck *checker, launches [][48]byte) error {
	if launches != nil && ck.accepts(SNPReport) && cfg.SNPVerifier == nil {
		return fmt.Errorf("%w: the group has SEV-SNP members, whose reports need Config.SNPVerifier (or leave SNP out of Policy.AcceptKinds)", ErrConfig)
	}
	return nil
}

// Launch returns this member's launch digest if it is a VM (zero for an
// enclave).
func (m *Member) Launch() [48]byte { return m.launch }

// snpEvidence makes this VM member's evidence: its report and the
// certificate table, concatenated.
func (m *Member) snpEvidence(ctx context.Context, data [sgx.ReportDataSize]byte) ([]byte, error) {
	report, table, err := m.cfg.SNP.SNPReport(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("attest: asking for an SNP report: %w", err)
	}
	return append(bytes.Clone(report), table...), nil
}

// verifySNP checks an SNP member's evidence: the report and its chain to
// a trusted root, its binding to this session, its launch digest among
// the group's VM members, and the policy.
func (m *Member) verifySNP(ctx context.Context, ev []byte, want [sgx.ReportDataSize]byte) (*Peer, error) {
	if !m.check.accepts(SNPReport) {
		return nil, fmt.Errorf("%w: %s", ErrKindRefused, SNPReport)
	}
	if m.cfg.SNPVerifier == nil || m.launches == nil {
		return nil, fmt.Errorf("%w: this group has no SEV-SNP members", ErrNotInGroup)
	}
	if len(ev) < snpreport.ReportSize {
		return nil, fmt.Errorf("%w: SNP evidence of %d bytes", ErrEvidence, len(ev))
	}
	r, err := m.cfg.SNPVerifier.Verify(ctx, snpreport.Evidence{Report: ev[:snpreport.ReportSize], CertTable: ev[snpreport.ReportSize:]})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	if r.ReportData != want {
		return nil, ErrBinding
	}
	idx := slices.Index(m.launches, r.Measurement)
	if idx < 0 || r.Measurement == ([48]byte{}) {
		return nil, fmt.Errorf("%w: launch digest %x", ErrNotInGroup, r.Measurement)
	}
	pol := m.check.policy
	if (pol.MRENCLAVE != nil || pol.Launch != nil) && !slices.Contains(pol.Launch, r.Measurement) {
		return nil, fmt.Errorf("%w: VM member %d (%x) is not one the policy lists", ErrPolicy, idx, r.Measurement[:8])
	}
	return &Peer{Index: idx, Evidence: SNPReport, Launch: r.Measurement, SNP: r}, nil
}
