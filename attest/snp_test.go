package attest

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"

	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/internal/ovmf/ovmftest"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/snp"
	"github.com/magesgx/mage/snp/snpreport"
	"github.com/magesgx/mage/tdx"
)

// vmSpec is an SNP member's launch: the AmdSev OVMF image's last page with
// sev-snp-measure's firmware digest (testdata/snp), vCPUs and a direct
// boot.
type vmSpec struct {
	name    string
	vcpus   int
	kernel  []byte
	cmdline string
}

func (v vmSpec) options(t testing.TB, cmdline string) ([]byte, snp.Options) {
	t.Helper()
	fw, err := os.ReadFile("../testdata/snp/ovmf_AmdSev_suffix.bin")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := hex.DecodeString("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74")
	return fw, snp.Options{VCPUs: v.vcpus, VCPUSignature: snp.Signature(25, 1, 1), GuestFeatures: 1,
		FirmwareDigest: (*[48]byte)(d), Boot: snp.NewDirectBoot(v.kernel, nil, cmdline)}
}

// launch is what the host's launch of the VM booted with cmdline measures.
func (v vmSpec) launch(t testing.TB, cmdline string) [48]byte {
	fw, o := v.options(t, cmdline)
	ld, err := snp.LaunchDigest(fw, o)
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

func (v vmSpec) member(t testing.TB) mage.AnyMember {
	fw, o := v.options(t, "")
	l, err := snp.Cut(fw, o)
	if err != nil {
		t.Fatal(err)
	}
	return mage.AnyMember{SNP: &mage.SNPMember{Name: v.name, Entry: mage.SNPEntry{Launch: *l, Cmdline: v.cmdline}}}
}

// snpFixture is a group of two SDK enclaves and two SEV-SNP VMs, on a
// simulated SGX platform and a simulated SNP platform.
type snpFixture struct {
	*fixture
	snp   *sim.SNPPlatform
	vms   []vmSpec
	group *mage.SignedAnyGroup
}

func newSNPFixture(t testing.TB) *snpFixture {
	t.Helper()
	var sdk []mage.Member
	for i, k := range []string{"keys/k1.pem", "keys/k1.pem"} {
		key, err := sgx.LoadSigningKey(read(t, k))
		if err != nil {
			t.Fatal(err)
		}
		sdk = append(sdk, mage.Member{Name: []string{"sgx-a", "sgx-b"}[i], ELF: read(t, []string{"enclaves/g1_m0.so", "enclaves/g1_m1.so"}[i]), Key: key})
	}
	vms := []vmSpec{{name: "vm-a", vcpus: 2, kernel: []byte("kernel a"), cmdline: "console=ttyS0"}, {name: "vm-b", vcpus: 4, kernel: []byte("kernel b")}}
	g, err := mage.SignAnyGroup(t.Context(), []mage.AnyMember{{SDK: &sdk[0]}, vms[0].member(t), {SDK: &sdk[1]}, vms[1].member(t)}, nil,
		mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := sim.NewSNPPlatform()
	if err != nil {
		t.Fatal(err)
	}
	return &snpFixture{fixture: newFixture(t), snp: p, vms: vms, group: g}
}

func (f *snpFixture) verifier() *snpreport.Verifier {
	return &snpreport.Verifier{InsecureSimulationRoots: []snpreport.Roots{{ProductLine: f.snp.ProductLine, ARK: f.snp.ARK, ASK: f.snp.ASK}}}
}

// enclave is SDK member i (0 or 2 in the table) on the simulated SGX
// platform.
func (f *snpFixture) enclave(t testing.TB, i int, mod func(*Config)) *Member {
	return f.member(t, f.group.Members[i].File, Remote, func(c *Config) {
		c.SNPVerifier = f.verifier()
		if mod != nil {
			mod(c)
		}
	})
}

// vm is a VM booted with cmdline and given payload, as member of a group.
func (f *snpFixture) vm(t testing.TB, spec vmSpec, cmdline string, payload []byte, policy uint64, mod func(*Config)) (*Member, error) {
	g := f.snp.Launch(spec.launch(t, cmdline), policy, [32]byte{})
	cfg := Config{SNP: &SimSNPBackend{Guest: g, Payload: payload, Cmdline: cmdline}, SNPVerifier: f.verifier(),
		InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return NewMember(cfg)
}

func (f *snpFixture) genuineVM(t testing.TB, i int) *Member {
	sm := f.group.Members[[]int{1, 3}[i]]
	m, err := f.vm(t, f.vms[i], sm.Cmdline, f.group.Payload, sim.SNPPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSNPMembers: SDK enclaves and SEV-SNP VMs of one group attest each
// other, every ordered pair, with evidence bound to the session; each side
// learns the other's identity (an MRENCLAVE or a launch digest) and index.
func TestSNPMembers(t *testing.T) {
	f := newSNPFixture(t)
	members := []*Member{f.enclave(t, 0, nil), f.genuineVM(t, 0), f.enclave(t, 2, nil), f.genuineVM(t, 1)}
	for i, m := range members {
		if m.Index() != i {
			t.Fatalf("member %d knows itself as %d", i, m.Index())
		}
	}
	if members[1].Launch() != f.group.Members[1].Launch {
		t.Fatal("the VM's own launch digest is not the one the group derives")
	}
	eachPair(t, members, func(i, j int, cp, sp *Peer) {
		for _, x := range []struct {
			p *Peer
			k int
		}{{cp, j}, {sp, i}} {
			if x.k%2 == 1 && (x.p.Evidence != SNPReport || x.p.Launch != f.group.Members[x.k].Launch || x.p.SNP == nil) {
				t.Errorf("%d -> %d: VM peer %d seen as %+v", i, j, x.k, x.p)
			}
			if x.k%2 == 0 && (x.p.Evidence != Remote || x.p.Identity.MRENCLAVE != f.group.Members[x.k].MRENCLAVE) {
				t.Errorf("%d -> %d: enclave peer %d seen as %+v", i, j, x.k, x.p)
			}
		}
	})
}

// eachPair has every ordered pair of members attest each other over
// loopback: both handshakes must succeed and each side must see the
// other at its index; check then looks at the peers the client and the
// server saw.
func eachPair(t *testing.T, members []*Member, check func(i, j int, client, server *Peer)) {
	t.Helper()
	for i, c := range members {
		for j, s := range members {
			if i == j {
				continue
			}
			cc, sc, cerr, serr := pair(t, c, s)
			if cerr != nil || serr != nil {
				t.Fatalf("%d -> %d: client %v, server %v", i, j, cerr, serr)
			}
			cp, sp := cc.Peer(), sc.Peer()
			if cp.Index != j || sp.Index != i {
				t.Errorf("%d -> %d: peers %d and %d", i, j, cp.Index, sp.Index)
			}
			check(i, j, cp, sp)
			cc.Close()
			sc.Close()
		}
	}
}

// TestSNPImpostors: a VM booted with another table, or with a debug
// policy, is refused by every member; a VM given a table its command line
// does not bind is not a member; a member with SNP peers needs a way to
// verify them; the policy selects VMs by launch digest.
func TestSNPImpostors(t *testing.T) {
	f := newSNPFixture(t)
	enc, vm := f.enclave(t, 0, nil), f.genuineVM(t, 0)

	// The host boots vm-a with the table of another group (one without
	// sgx-b): it is that group's member, and this group's members refuse
	// it.
	var others []mage.AnyMember
	for _, x := range []int{0, 1, 3} {
		if x == 0 {
			key, _ := sgx.LoadSigningKey(read(t, "keys/k1.pem"))
			others = append(others, mage.AnyMember{SDK: &mage.Member{Name: "sgx-a", ELF: read(t, "enclaves/g1_m0.so"), Key: key}})
		} else {
			others = append(others, f.vms[(x-1)/2].member(t))
		}
	}
	other, err := mage.SignAnyGroup(t.Context(), others, nil, mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := f.vm(t, f.vms[0], other.Members[1].Cmdline, other.Payload, sim.SNPPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Member{enc, vm} {
		for _, dir := range []string{"dials", "is dialed by"} {
			var cerr, serr error
			if dir == "dials" {
				_, _, cerr, serr = pair(t, impostor, m)
			} else {
				_, _, cerr, serr = pair(t, m, impostor)
			}
			if cerr == nil || serr == nil || !(errors.Is(cerr, ErrNotInGroup) || errors.Is(serr, ErrNotInGroup)) {
				t.Errorf("a VM booted with another table %s a member: client %v, server %v", dir, cerr, serr)
			}
		}
	}
	// Given this group's table while its command line binds the other's.
	if _, err := f.vm(t, f.vms[0], other.Members[1].Cmdline, f.group.Payload, sim.SNPPolicy, nil); !errors.Is(err, ErrNotMember) {
		t.Errorf("a VM given a table its command line does not bind: %v", err)
	}
	// Booted with this group's command line plus a word: not a member.
	if _, err := f.vm(t, f.vms[0], f.group.Members[1].Cmdline+" quiet", f.group.Payload, sim.SNPPolicy, nil); !errors.Is(err, ErrNotMember) {
		t.Errorf("a VM booted with another command line: %v", err)
	}
	// A debug guest is the member's launch digest, but refused.
	debug, err := f.vm(t, f.vms[0], f.group.Members[1].Cmdline, f.group.Payload, sim.SNPPolicy|1<<19, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, cerr, serr := pair(t, debug, enc); cerr == nil || !errors.Is(serr, ErrEvidence) {
		t.Errorf("a debug VM: client %v, server %v", cerr, serr)
	}
	// A report asked for at VMPL 1 (by code below the VM's own kernel's
	// privilege) is refused.
	g := f.snp.Launch(f.vms[0].launch(t, f.group.Members[1].Cmdline), sim.SNPPolicy, [32]byte{})
	vmpl1, err := NewMember(Config{SNP: &vmplBackend{SimSNPBackend{Guest: g, Payload: f.group.Payload, Cmdline: f.group.Members[1].Cmdline}}, SNPVerifier: f.verifier(),
		InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, serr := pair(t, vmpl1, enc); !errors.Is(serr, ErrPolicy) {
		t.Errorf("a report at VMPL 1: %v", serr)
	}
	// Without an SNPVerifier, a member of a group with VMs does not start.
	if _, err := f.vm(t, f.vms[0], f.group.Members[1].Cmdline, f.group.Payload, sim.SNPPolicy, func(c *Config) { c.SNPVerifier = nil }); !errors.Is(err, ErrConfig) {
		t.Errorf("a VM member without an SNPVerifier: %v", err)
	}
	if _, err := NewMember(Config{Backend: enc.cfg.Backend, InsecureSimulationRoot: f.p.RootCertificate()}); !errors.Is(err, ErrConfig) {
		t.Errorf("an enclave of a group with VMs, without an SNPVerifier: %v", err)
	}
	// A verifier whose roots are AMD's alone refuses simulated reports.
	amdOnly := f.enclave(t, 0, func(c *Config) { c.SNPVerifier = &snpreport.Verifier{} })
	if _, _, _, serr := pair(t, vm, amdOnly); !errors.Is(serr, ErrEvidence) {
		t.Errorf("a simulated VM against AMD's roots: %v", serr)
	}
	// Policy: an enclave that lists only vm-b's launch digest refuses
	// vm-a; one that lists an MRENCLAVE only refuses every VM.
	onlyB := f.enclave(t, 0, func(c *Config) { c.Policy.Launch = [][48]byte{f.group.Members[3].Launch} })
	if _, _, _, serr := pair(t, vm, onlyB); !errors.Is(serr, ErrPolicy) {
		t.Errorf("policy naming vm-b, vm-a dials: %v", serr)
	}
	onlyEnc := f.enclave(t, 0, func(c *Config) { c.Policy.MRENCLAVE = []sgx.Measurement{f.group.Members[2].MRENCLAVE} })
	if _, _, _, serr := pair(t, vm, onlyEnc); !errors.Is(serr, ErrPolicy) {
		t.Errorf("policy naming an enclave, a VM dials: %v", serr)
	}
	if _, _, cerr, serr := pair(t, f.enclave(t, 2, nil), onlyB); !errors.Is(serr, ErrPolicy) || cerr == nil {
		t.Errorf("policy naming vm-b only, an enclave dials: client %v, server %v", cerr, serr)
	}
}

// TestSNPReplay: a genuine VM member's report, made for another session,
// is refused: the evidence is bound to the TLS session and key.
func TestSNPReplay(t *testing.T) {
	f := newSNPFixture(t)
	enc := f.enclave(t, 0, nil)
	g := f.snp.Launch(f.vms[0].launch(t, f.group.Members[1].Cmdline), sim.SNPPolicy, [32]byte{})
	report, table, err := g.Report([64]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		errc <- enc.Server(raw).Handshake(context.Background())
	}()
	c, err := rawTLS(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeMsg(c, msgHello, append([]byte{protocolVersion, byte(SNPReport)}, make([]byte, sgx.TargetInfoSize)...))
	readMsg(c, msgHello)
	writeMsg(c, msgEvidence, append(report, table...))
	writeMsg(c, msgProof, nil)
	if err := <-errc; !errors.Is(err, ErrBinding) {
		t.Errorf("a replayed SNP report: %v", err)
	}
}

// tdEntry is a TDX member of Debian's OVMF (its MRTD) whose boot is the
// one of go-tdx-guest's real CCEL event log (RTMR0 to RTMR2).
func tdEntry(t testing.TB) mage.TDXEntry {
	t.Helper()
	mrtd, err := tdx.MRTD(ovmftest.DebianOVMF(t))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../testdata/tdx/ccel/ccel_data.dat")
	if err != nil {
		t.Fatal(err)
	}
	events, err := tdx.ParseEventLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	rtmr, err := tdx.ReplayRTMRs(events)
	if err != nil {
		t.Fatal(err)
	}
	return mage.TDXEntry{MRTD: mrtd, RTMR: [3][48]byte{rtmr[0], rtmr[1], rtmr[2]}}
}

// td launches a simulated TD of the entry whose boot extends RTMR3 with
// the event of the table whose SHA-256 is table, handed payload.
func (f *snpFixture) td(t testing.TB, e mage.TDXEntry, table [32]byte, payload []byte, attrs uint64, mod func(*Config)) (*Member, error) {
	g := f.p.LaunchTD(e.MRTD, [4][48]byte{e.RTMR[0], e.RTMR[1], e.RTMR[2], e.RTMR3}, attrs)
	if err := g.ExtendRTMR(3, mage.TableEvent(table)); err != nil {
		t.Fatal(err)
	}
	cfg := Config{TDX: &SimTDXBackend{Guest: g, Payload: payload}, SNPVerifier: f.verifier(),
		InsecureSimulationRoot: f.p.RootCertificate(), HandshakeTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return NewMember(cfg)
}

// newTDXFixture is the SNP fixture with its group replaced by one of an
// SDK enclave (sgx-a), a TD (td, booted as go-tdx-guest's real log) and
// vm-a, in that order; it returns the TD's entry too.
func newTDXFixture(t testing.TB) (*snpFixture, mage.TDXEntry) {
	t.Helper()
	f := newSNPFixture(t)
	e := tdEntry(t)
	key, err := sgx.LoadSigningKey(read(t, "keys/k1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sgxA := mage.Member{Name: "sgx-a", ELF: read(t, "enclaves/g1_m0.so"), Key: key}
	g, err := mage.SignAnyGroup(t.Context(), []mage.AnyMember{{SDK: &sgxA}, {TDX: &mage.TDXMember{Name: "td", Entry: e}}, f.vms[0].member(t)}, nil,
		mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	f.group = g
	return f, e
}

// tdxMembers starts the genuine members of newTDXFixture's group: the
// enclave, the TD and the VM.
func (f *snpFixture) tdxMembers(t testing.TB, e mage.TDXEntry) (enc, td, vm *Member) {
	t.Helper()
	g := f.group
	enc = f.enclave(t, 0, nil)
	td, err := f.td(t, e, mage.TableSHA256(g.Payload), g.Payload, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err = f.vm(t, f.vms[0], g.Members[2].Cmdline, g.Payload, sim.SNPPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc, td, vm
}

// TestTDXMembers: an SDK enclave, an SNP VM and a TDX trust domain of one
// group attest each other, every ordered pair; a TD whose boot extended
// RTMR3 with another table's event, or handed another table, or
// debuggable, is refused; a TD quote under the Intel root is refused until
// TDX collateral is verified.
func TestTDXMembers(t *testing.T) {
	f, e := newTDXFixture(t)
	g, table := f.group, mage.TableSHA256(f.group.Payload)
	if g.Members[1].TD != e.Measurement(table) || g.Members[1].TD.RTMR[0] != e.RTMR[0] {
		t.Fatal("the TD's derived measurement is not its entry's over the table")
	}
	enc, td, vm := f.tdxMembers(t, e)
	members := []*Member{enc, td, vm}
	eachPair(t, members, func(i, j int, cp, _ *Peer) {
		if j == 1 && (cp.Evidence != TDQuote || cp.TD == nil || cp.TD.RTMR[3] != g.Members[1].TD.RTMR[3]) {
			t.Errorf("%d -> TD: seen as %+v", i, cp)
		}
	})
	if td.TD() != g.Members[1].TD {
		t.Error("the TD's own measurement is not the derived one")
	}

	// A TD whose boot extended RTMR3 with another table's event, handed
	// this table: not a member. Handed a table of its own making (another
	// group with it), it is that group's member, and this group's members
	// refuse it.
	if _, err := f.td(t, e, [32]byte{1}, g.Payload, 0, nil); !errors.Is(err, ErrNotMember) {
		t.Errorf("a TD whose RTMR3 binds another table: %v", err)
	}
	other, err := mage.SignAnyGroup(t.Context(), []mage.AnyMember{{TDX: &mage.TDXMember{Name: "td", Entry: e}}, f.vms[1].member(t)}, nil,
		mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := f.td(t, e, mage.TableSHA256(other.Payload), other.Payload, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Member{enc, vm} {
		if _, _, cerr, serr := pair(t, impostor, m); cerr == nil || !errors.Is(serr, ErrNotInGroup) {
			t.Errorf("a TD of another group: client %v, server %v", cerr, serr)
		}
	}
	debug, err := f.td(t, e, table, g.Payload, dcap.TDAttrDebug, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, serr := pair(t, debug, enc); !errors.Is(serr, ErrPolicy) {
		t.Errorf("a debuggable TD: %v", serr)
	}
	// A real TD quote under the Intel root: refused without collateral;
	// verified in full with its TDX collateral (dcap-qvl's sample).
	raw, err := os.ReadFile("../testdata/tdx/dcap-qvl/tdx_quote")
	if err != nil {
		t.Fatal(err)
	}
	raw = raw[:len(raw)-70] // the sample's zero padding
	if _, err := enc.check.tdQuote(t.Context(), raw); !errors.Is(err, ErrNoCollateral) {
		t.Errorf("a real TD quote without collateral: %v", err)
	}
	colRaw, err := os.ReadFile("../testdata/tdx/dcap-qvl/tdx_quote_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.ParseCollateralBundle(colRaw)
	if err != nil {
		t.Fatal(err)
	}
	at := func() time.Time { return time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC) }
	ck, err := newChecker(dcap.Fixed{C: col}, nil, nil, at, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := ck.tdQuote(t.Context(), raw); err != nil || body.MRTD[0] != 0x91 {
		t.Errorf("a real TD quote with its collateral: %v", err)
	}
	late, _ := newChecker(dcap.Fixed{C: col}, nil, nil, func() time.Time { return time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC) }, Policy{})
	if _, err := late.tdQuote(t.Context(), raw); !errors.Is(err, ErrEvidence) {
		t.Errorf("a real TD quote with expired collateral: %v", err)
	}
	// Without a way to verify TD quotes, a member of a group with TDs
	// does not start.
	if _, err := f.vm(t, f.vms[0], g.Members[2].Cmdline, g.Payload, sim.SNPPolicy, func(c *Config) { c.InsecureSimulationRoot = nil; c.Policy.AcceptKinds = []Kind{SNPReport, TDQuote} }); !errors.Is(err, ErrConfig) {
		t.Errorf("a VM of a group with TDs and no way to verify their quotes: %v", err)
	}
}

// vmplBackend asks for its reports at VMPL 1.
type vmplBackend struct{ SimSNPBackend }

func (b *vmplBackend) SNPReport(_ context.Context, data [64]byte) ([]byte, []byte, error) {
	return b.Guest.ReportAtVMPL(data, 1)
}

// TestVMOtherBootInputs: a host boots a VM or a TD with other boot inputs
// (another kernel) but the group's own table and command line, and its
// guest code skips the self-check a member makes at start (here: the
// genuine member's backend is handed the other guest after NewMember).
// Its evidence binds the right table but not the member's boot, and every
// peer refuses it.
func TestVMOtherBootInputs(t *testing.T) {
	f, e := newTDXFixture(t)
	g, table := f.group, mage.TableSHA256(f.group.Payload)
	enc, td, vm := f.tdxMembers(t, e)

	// The VM: another kernel, the same command line (which binds the
	// table) and vCPUs.
	otherKernel := f.vms[0]
	otherKernel.kernel = []byte("kernel a, patched")
	hostileVM, err := f.vm(t, f.vms[0], g.Members[2].Cmdline, g.Payload, sim.SNPPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	hostileVM.cfg.SNP.(*SimSNPBackend).Guest = f.snp.Launch(otherKernel.launch(t, g.Members[2].Cmdline), sim.SNPPolicy, [32]byte{})

	// The TD: another kernel (RTMR1), RTMR3 extended with this group's
	// table event.
	hostileTD, err := f.td(t, e, table, g.Payload, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rtmr := [4][48]byte{e.RTMR[0], e.RTMR[1], e.RTMR[2], e.RTMR3}
	rtmr[1][0] ^= 1
	other := f.p.LaunchTD(e.MRTD, rtmr, 0)
	if err := other.ExtendRTMR(3, mage.TableEvent(table)); err != nil {
		t.Fatal(err)
	}
	hostileTD.cfg.TDX.(*SimTDXBackend).Guest = other

	for name, h := range map[string]*Member{"a VM with another kernel": hostileVM, "a TD with another kernel": hostileTD} {
		for _, m := range []*Member{enc, td, vm} {
			if m == h {
				continue
			}
			if _, _, cerr, serr := pair(t, h, m); cerr == nil || !errors.Is(serr, ErrNotInGroup) {
				t.Errorf("%s dials a member: client %v, server %v", name, cerr, serr)
			}
			if _, _, cerr, _ := pair(t, m, h); !errors.Is(cerr, ErrNotInGroup) {
				t.Errorf("a member dials %s: client %v", name, cerr)
			}
		}
	}
}
