package attest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/magesgx/mage/dcap"
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

// newVMMember prepares a member that is a confidential VM: its own
// measurement from its own platform (an SNP report's launch digest, or a
// TD quote's MRTD and RTMRs), every member derived from the table it was
// handed, and itself among them. For an SNP VM the table must be the one
// its command line binds; for a TD, finding itself is the check: its RTMR3
// holds the event of the table its boot extended it with.
func newVMMember(cfg Config, ck *checker) (*Member, error) {
	switch {
	case cfg.Proof != nil || cfg.Lineage != nil || cfg.LineageStore != nil:
		return nil, fmt.Errorf("%w: VM members are in flat tables: no membership or lineage proof", ErrConfig)
	case cfg.AllowUnattestedVerifiers:
		return nil, fmt.Errorf("%w: a VM member does not serve unattested verifiers yet", ErrConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HandshakeTimeout)
	defer cancel()
	var d *mage.TableDeriver
	var launch [48]byte
	var td mage.TDMeasurement
	var derr error
	if cfg.SNP != nil {
		report, _, err := cfg.SNP.SNPReport(ctx, [64]byte{})
		if err != nil {
			return nil, fmt.Errorf("%w: asking the platform for a report: %w", ErrConfig, err)
		}
		if len(report) != snpreport.ReportSize {
			return nil, fmt.Errorf("%w: the platform's report has %d bytes, want %d", ErrConfig, len(report), snpreport.ReportSize)
		}
		launch = [48]byte(report[0x90:0xc0]) // MEASUREMENT: this VM's own, from its own platform
		payload, cmdline := cfg.SNP.Table()
		d, derr = mage.NewVMDeriver(payload, cmdline, cfg.Libpal)
	} else {
		raw, err := cfg.TDX.TDQuote(ctx, [64]byte{})
		if err != nil {
			return nil, fmt.Errorf("%w: asking the platform for a quote: %w", ErrConfig, err)
		}
		q, err := dcap.ParseTDQuote(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: the platform's TD quote: %w", ErrConfig, err)
		}
		td = mage.TDMeasurement{MRTD: q.TD.MRTD, RTMR: q.TD.RTMR}
		d, derr = mage.NewTDXDeriver(cfg.TDX.Table(), cfg.Libpal)
	}
	if derr != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMember, derr)
	}
	g, vms, err := groupOf(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMember, err)
	}
	if cfg.SNP != nil {
		g.Self = slices.Index(vms.launches, launch)
	} else {
		g.Self = slices.Index(vms.tds, td)
	}
	if g.Self < 0 || (launch == [48]byte{} && td == mage.TDMeasurement{}) {
		return nil, fmt.Errorf("%w: %w: this VM's measurement is none of the %d members its table derives", ErrNotMember, mage.ErrUntrustedTable, len(g.Measurements))
	}
	if err := checkVMConfig(cfg, ck, vms); err != nil {
		return nil, err
	}
	if ck.accepts(Remote) && !ck.canVerifyQuotes() && slices.ContainsFunc(g.Measurements, func(m sgx.Measurement) bool { return m != (sgx.Measurement{}) }) {
		return nil, fmt.Errorf("%w: the group's enclaves prove themselves to a VM by quotes: set Collateral or InsecureSimulationRoot", ErrConfig)
	}
	m := &Member{cfg: cfg, group: g, launches: vms.launches, launch: launch, tds: vms.tds, td: td, check: ck,
		ownLP: new(atomic.Pointer[mage.LineageProof]), storeMu: new(sync.Mutex)}
	what := "snp " + hex.EncodeToString(launch[:8])
	if cfg.TDX != nil {
		what = "tdx " + hex.EncodeToString(td.MRTD[:8])
	}
	if m.id, err = newIdentity(fmt.Sprintf("mage member %d %s", g.Self, what)); err != nil {
		return nil, err
	}
	return m, nil
}

// checkVMConfig refuses a member whose group has VM members whose
// evidence it accepts but could not verify.
func checkVMConfig(cfg Config, ck *checker, vms vmSet) error {
	if vms.launches != nil && ck.accepts(SNPReport) && cfg.SNPVerifier == nil {
		return fmt.Errorf("%w: the group has SEV-SNP members, whose reports need Config.SNPVerifier (or leave SNP out of Policy.AcceptKinds)", ErrConfig)
	}
	if vms.tds != nil && ck.accepts(TDQuote) && !ck.canVerifyQuotes() {
		return fmt.Errorf("%w: the group has TDX members, whose quotes need Collateral with TDX collateral (real TDs) or InsecureSimulationRoot (simulated ones), or leave TDX out of Policy.AcceptKinds", ErrConfig)
	}
	return nil
}

// TD returns this member's measurement if it is a TDX trust domain.
func (m *Member) TD() mage.TDMeasurement { return m.td }

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
	if r.VMPL != 0 {
		// The launch model has no SVSM: every member's code runs at
		// VMPL 0, and a report asked for at another level was asked for
		// by something the group's measurement does not describe.
		return nil, fmt.Errorf("%w: the SNP report was asked for at VMPL %d, not 0", ErrPolicy, r.VMPL)
	}
	idx := slices.Index(m.launches, r.Measurement)
	if idx < 0 || r.Measurement == ([48]byte{}) {
		return nil, fmt.Errorf("%w: launch digest %x", ErrNotInGroup, r.Measurement)
	}
	pol := m.check.policy
	if pol.listsMembers() && !slices.Contains(pol.Launch, r.Measurement) {
		return nil, fmt.Errorf("%w: VM member %d (%x) is not one the policy lists", ErrPolicy, idx, r.Measurement[:8])
	}
	return &Peer{Index: idx, Evidence: SNPReport, Launch: r.Measurement, SNP: r}, nil
}

// TDXBackend is what a member that is an Intel TDX trust domain can do:
// give the group's table it was handed (its boot extended RTMR3 with
// mage.TableEvent of that table's SHA-256 before anything else ran), and
// ask for TD quotes (through configfs-tsm or /dev/tdx_guest on a real TD;
// sim.TDGuest in simulation).
type TDXBackend interface {
	Table() []byte
	TDQuote(ctx context.Context, data [64]byte) ([]byte, error)
}

// SimTDXBackend is the TDXBackend of a TD on the simulated platform.
type SimTDXBackend struct {
	Guest   *sim.TDGuest
	Payload []byte
}

// Table implements TDXBackend.
func (b *SimTDXBackend) Table() []byte { return b.Payload }

// TDQuote implements TDXBackend.
func (b *SimTDXBackend) TDQuote(_ context.Context, data [64]byte) ([]byte, error) {
	return b.Guest.Quote(data)
}

// verifyTD checks a TDX member's evidence: the TD quote and its chain,
// its binding to this session, the TD's measurement among the group's TDX
// members, and the policy.
func (m *Member) verifyTD(ctx context.Context, ev []byte, want [sgx.ReportDataSize]byte) (*Peer, error) {
	if !m.check.accepts(TDQuote) {
		return nil, fmt.Errorf("%w: %s", ErrKindRefused, TDQuote)
	}
	if m.tds == nil {
		return nil, fmt.Errorf("%w: this group has no TDX members", ErrNotInGroup)
	}
	body, err := m.check.tdQuote(ctx, ev)
	if err != nil {
		return nil, err
	}
	if body.ReportData != want {
		return nil, ErrBinding
	}
	got := mage.TDMeasurement{MRTD: body.MRTD, RTMR: body.RTMR}
	idx := slices.Index(m.tds, got)
	if idx < 0 || got == (mage.TDMeasurement{}) {
		return nil, fmt.Errorf("%w: TD with MRTD %x and RTMR3 %x", ErrNotInGroup, got.MRTD[:8], got.RTMR[3][:8])
	}
	pol := m.check.policy
	switch {
	case body.TDAttributes&dcap.TDAttrDebug != 0 && !pol.AllowDebug:
		return nil, fmt.Errorf("%w: TDX member %d is a debuggable TD", ErrPolicy, idx)
	case body.MRServiceTD != [48]byte{}:
		// A service TD bound to this TD can migrate or change it; the
		// group's measurements do not cover one.
		return nil, fmt.Errorf("%w: TDX member %d has a service TD bound (MRSERVICETD %x)", ErrPolicy, idx, body.MRServiceTD[:8])
	case pol.listsMembers() && !slices.Contains(pol.TD, got):
		return nil, fmt.Errorf("%w: TDX member %d is not one the policy lists", ErrPolicy, idx)
	}
	return &Peer{Index: idx, Evidence: TDQuote, TD: body}, nil
}
