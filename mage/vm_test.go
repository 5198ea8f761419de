package mage

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/snp"
)

// snpFirmware is the AmdSev OVMF image's last page and sev-snp-measure's
// digest of the whole image's firmware pages (testdata/snp/README.md).
func snpFirmware(t testing.TB) ([]byte, *[48]byte) {
	t.Helper()
	fw, err := os.ReadFile("../testdata/snp/ovmf_AmdSev_suffix.bin")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := hex.DecodeString("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74")
	return fw, (*[48]byte)(d)
}

// genFile is a generated test file: byte i is i*7+seed.
func genFile(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// snpVM is an SNP member's launch: its options and its direct boot's
// kernel and initrd.
type snpVM struct {
	name           string
	o              snp.Options
	kernel, initrd []byte
	cmdline        string
}

func (v snpVM) member(t testing.TB) AnyMember {
	t.Helper()
	fw, fd := snpFirmware(t)
	o := v.o
	o.FirmwareDigest, o.Boot = fd, snp.NewDirectBoot(v.kernel, v.initrd, "")
	l, err := snp.Cut(fw, o)
	if err != nil {
		t.Fatal(err)
	}
	return AnyMember{SNP: &SNPMember{Name: v.name, Entry: SNPEntry{Launch: *l, Cmdline: v.cmdline}}}
}

// launch is the launch digest the VM gets booted with cmdline, computed
// from scratch (no cut).
func (v snpVM) launch(t testing.TB, cmdline string) [48]byte {
	t.Helper()
	fw, fd := snpFirmware(t)
	o := v.o
	o.FirmwareDigest, o.Boot = fd, snp.NewDirectBoot(v.kernel, v.initrd, cmdline)
	ld, err := snp.LaunchDigest(fw, o)
	if err != nil {
		t.Fatal(err)
	}
	return ld
}

func testVMs() []snpVM {
	milan := snp.Signature(25, 1, 1)
	return []snpVM{
		{name: "vm-a", o: snp.Options{VCPUs: 2, VCPUSignature: milan, GuestFeatures: 1}, kernel: genFile(300001, 1), initrd: genFile(123457, 3), cmdline: "console=ttyS0 root=/dev/vda1 ro"},
		{name: "vm-b", o: snp.Options{VCPUs: 4, VCPUSignature: snp.Signature(25, 17, 0), GuestFeatures: 0x21}, kernel: genFile(4096, 2), cmdline: ""},
	}
}

// TestMixedGroupWithSNP: two SDK enclaves, a Gramine enclave and two SNP
// VMs sign as one group. Every member derives every member (the SGX
// members an SNP launch digest from their own table, the VMs every
// MRENCLAVE from the table their command line binds), and each VM's
// launch digest is the one its firmware gives when booted with the
// command line the group wrote for it.
func TestMixedGroupWithSNP(t *testing.T) {
	_, _, c := gramineVectors(t)
	kb, _ := os.ReadFile("../testdata/gramine/key.pem")
	key, err := sgx.LoadSigningKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	sdk, _ := groupMembers(t, "g1")
	vms := testVMs()
	members := []AnyMember{{SDK: &sdk[0]}, vms[0].member(t), {Gramine: &GramineMember{Name: "d2", Manifest: gramineInput(t, "d2_t4_256M_nodebug_isv"), Key: key}}, {SDK: &sdk[1]}, vms[1].member(t)}
	g, err := SignAnyGroup(t.Context(), members, c.Libpal, SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	table := TableSHA256(g.Payload)
	want := make([]Derived, len(g.Members))
	for i, sm := range g.Members {
		want[i] = Derived{Kind: sm.Kind, MRENCLAVE: sm.MRENCLAVE, Launch: sm.Launch}
	}
	for _, i := range []int{1, 4} {
		sm, v := g.Members[i], vms[(i-1)/3]
		if sm.Kind != KindSNP || sm.Cmdline != BoundCmdline(v.cmdline, table) || !strings.HasSuffix(sm.Cmdline, CmdlineTableKey+hex.EncodeToString(table[:])) {
			t.Fatalf("%s: kind %s, command line %q", sm.Name, sm.Kind, sm.Cmdline)
		}
		if got := v.launch(t, sm.Cmdline); got != sm.Launch {
			t.Errorf("%s: booted with %q, the firmware measures %x; the group derives %x", sm.Name, sm.Cmdline, got, sm.Launch)
		}
		if sm.MRENCLAVE != (sgx.Measurement{}) {
			t.Errorf("%s: a VM member with an MRENCLAVE", sm.Name)
		}
	}
	// Every member's own copy of the table derives every member.
	check := func(who string, d *TableDeriver) {
		t.Helper()
		got, err := d.DeriveMembers()
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s derives member %d as %+v, want %+v", who, i, got[i], want[i])
			}
		}
		if _, err := d.DeriveAll(); !errors.Is(err, ErrVMMember) {
			t.Errorf("%s: DeriveAll with VM members: %v", who, err)
		}
	}
	for _, i := range []int{0, 3} {
		s, err := sgxsdk.ParseSigned(g.Members[i].File)
		if err != nil {
			t.Fatal(err)
		}
		if mr, err := s.Measure(t.Context()); err != nil || mr != g.Members[i].MRENCLAVE {
			t.Fatalf("SDK member %d measures %s (%v)", i, mr, err)
		}
		d, err := NewSectionDeriver(s.ELF.MageSection(), c.Libpal)
		if err != nil {
			t.Fatal(err)
		}
		check(g.Members[i].Name, d)
	}
	m, err := gramine.ParseManifest(g.Members[2].File)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := gramine.NewEnclave(m, c.Libpal); err != nil || e.Measure() != g.Members[2].MRENCLAVE {
		t.Fatalf("the Gramine member does not measure as derived: %v", err)
	}
	d, _ := manifestDeriver(t, m, c.Libpal)
	check("the Gramine member", d)
	for _, i := range []int{1, 4} {
		d, err := NewVMDeriver(g.Payload, g.Members[i].Cmdline, c.Libpal)
		if err != nil {
			t.Fatal(err)
		}
		check(g.Members[i].Name, d)
	}

	// A VM given another table than its command line binds refuses it;
	// a VM booted with another table, or another command line, is not the
	// member its peers derive.
	other, err := SignAnyGroup(t.Context(), members[1:], c.Libpal, SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVMDeriver(other.Payload, g.Members[1].Cmdline, c.Libpal); !errors.Is(err, ErrTable) {
		t.Errorf("a VM given another group's table: %v", err)
	}
	for _, cmdline := range []string{other.Members[0].Cmdline, vms[0].cmdline, vms[0].cmdline + " " + CmdlineTableKey + strings.Repeat("0", 64), g.Members[1].Cmdline + " quiet"} {
		if got := vms[0].launch(t, cmdline); got == g.Members[1].Launch {
			t.Errorf("booted with %q, the VM measures as the member", cmdline)
		}
	}
	if _, err := NewVMDeriver(g.Payload, g.Members[1].Cmdline+" "+g.Members[1].Cmdline, c.Libpal); !errors.Is(err, ErrTable) {
		t.Errorf("a command line with two tables: %v", err)
	}

	// The table survives its encoding; the SDK members' section is the
	// table padded.
	vt, err := ParseVersionedTable(g.Payload)
	if err != nil || !bytes.Equal(vt.Marshal(), g.Payload) || !bytes.Equal(g.Section[:len(g.Payload)], g.Payload) {
		t.Fatalf("the table does not survive its encoding: %v", err)
	}
}

// TestSNPMemberReference: the bound command line of a VM member, given to
// sev-snp-measure (testdata/snp/README.md), gives the launch digest the
// group derives for it.
func TestSNPMemberReference(t *testing.T) {
	v := testVMs()[0]
	table := [32]byte{0x5a, 0xa5}
	e := v.member(t).SNP.Entry
	got, err := e.Digest(table)
	if err != nil {
		t.Fatal(err)
	}
	// sev-snp-measure --mode snp --vcpus 2 --vcpu-type EPYC-Milan
	// --guest-features 0x1 --ovmf ovmf_AmdSev_suffix.bin --kernel kernel-a
	// --initrd initrd-a --snp-ovmf-hash 086e...6b74 --append "console=ttyS0
	// root=/dev/vda1 ro mage.table=5aa50000...00"
	const want = "c6f1ed26b76313e42f5986fa39613e08cab9ae33d90ba9290df963d435dad7b29e3265a8005f1e3d0d73fe25c0f23488"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("bound launch digest %x, sev-snp-measure %s (command line %q)", got, want, BoundCmdline(v.cmdline, table))
	}
}

// TestHostileSNPEntries: SNP entries that lie about their sizes, page
// types or runs, or whose command line is not plain, are refused.
func TestHostileSNPEntries(t *testing.T) {
	e := testVMs()[0].member(t).SNP.Entry
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	good := e.marshal()
	if back, err := parseSNPEntry(good); err != nil || !bytes.Equal(back.marshal(), good) {
		t.Fatalf("an entry does not survive its encoding: %v", err)
	}
	if runs := len(runsOf(e.Launch.Suffix)); runs != 3 {
		t.Errorf("%d runs for the zero pages after the hashes page, the BSP's VMSA and an AP's, want 3", runs)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"truncated":         good[:snpHeaderSize-1],
		"trailing byte":     append(bytes.Clone(good), 0),
		"huge count":        mut(func(b []byte) []byte { b[snpHeaderSize+24] = 0xff; b[snpHeaderSize+27] = 0x7f; return b }),
		"unknown page type": mut(func(b []byte) []byte { b[snpHeaderSize] = 9; return b }),
		"reserved bytes":    mut(func(b []byte) []byte { b[snpHeaderSize+1] = 1; return b }),
		"table off page":    mut(func(b []byte) []byte { b[56], b[57] = 0xf0, 0x0f; return b }),
		"unaligned hashes":  mut(func(b []byte) []byte { b[48] = 1; return b }),
		"control character": mut(func(b []byte) []byte { b[len(b)-1] = '\n'; return b }),
		"many runs":         mut(func(b []byte) []byte { b[58] = 200; return b }),
	} {
		if _, err := parseSNPEntry(b); !errors.Is(err, ErrTable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, cmdline := range []string{"a\x00b", strings.Repeat("x", MaxCmdline+1), "quiet mage.table=00"} {
		bad := e
		bad.Cmdline = cmdline
		if err := bad.check(); !errors.Is(err, ErrTable) {
			t.Errorf("base command line %q: %v", cmdline, err)
		}
	}
}

// BenchmarkDeriveSNP compares deriving an SNP member (2 vCPUs on the
// AmdSev image: the bound command line, the hashes page and 18 PAGE_INFO
// records) with the raw hashing that needs: SHA-256 of the command line
// and its NUL, SHA-384 of a 4 KiB page and 18 SHA-384s of 112 bytes.
// Report the ratio Derive/Hash of the two ns/op figures from one run.
func BenchmarkDeriveSNP(b *testing.B) {
	v := testVMs()[0]
	am := v.member(b)
	t := &VersionedTable{Kinds: []Kind{KindSNP}, Entries: []Entry{{}}, SNP: []*SNPEntry{&am.SNP.Entry}}
	d, err := newVMTableDeriver(t.Marshal(), nil)
	if err != nil {
		b.Fatal(err)
	}
	records := 1 + len(am.SNP.Entry.Launch.Suffix)
	if records != 18 {
		b.Fatalf("%d records", records)
	}
	b.Run("Derive", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.DeriveLaunch(0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Hash", func(b *testing.B) {
		cmdline := []byte(BoundCmdline(v.cmdline, d.TableSHA256()) + "\x00")
		page := make([]byte, snp.PageSize)
		var rec [0x70]byte
		for b.Loop() {
			c := sha256.Sum256(cmdline)
			page[0] = c[0]
			p := sha512.Sum384(page)
			rec[0] = p[0]
			for range records {
				p = sha512.Sum384(rec[:])
				rec[0] = p[0]
			}
		}
	})
}

// TestTDXEntries: a TDX member's entry survives the table's encoding; it
// derives its RTMR3 as SHA-384(RTMR3 before || SHA-384(tag || table
// SHA-256)) and the other registers as recorded; entries of another size
// are refused.
func TestTDXEntries(t *testing.T) {
	e := &TDXEntry{MRTD: [48]byte{1}, RTMR: [3][48]byte{{2}, {3}, {4}}, RTMR3: [48]byte{5}}
	vm := testVMs()[0].member(t).SNP.Entry
	tab := &VersionedTable{Kinds: []Kind{KindSDK, KindTDX, KindSNP}, Entries: []Entry{{State: measureState(64), Offset: 0x3000}, {}, {}},
		SNP: []*SNPEntry{nil, nil, &vm}, TDX: []*TDXEntry{nil, e, nil}, SDKSectionSize: 4096}
	payload := tab.Marshal()
	back, err := ParseVersionedTable(payload)
	if err != nil || !bytes.Equal(back.Marshal(), payload) || *back.TDX[1] != *e || back.Kinds[1] != KindTDX {
		t.Fatalf("a table with a TDX member does not survive its encoding: %v", err)
	}
	d, err := newVersionedDeriver(back, payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.DeriveTD(1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(payload)
	ev := sha512.Sum384(append([]byte("MAGE table v1\x00"), h[:]...))
	want := sha512.Sum384(append(append([]byte{}, e.RTMR3[:]...), ev[:]...))
	if got.MRTD != e.MRTD || got.RTMR[2] != e.RTMR[2] || got.RTMR[3] != want {
		t.Errorf("derived %+v", got)
	}
	if _, err := d.DeriveTD(2); err == nil {
		t.Error("an SNP member derived as a TD")
	}
	bad := bytes.Clone(payload)
	off := v2HeaderSize + v2EntrySize
	binary.LittleEndian.PutUint32(bad[off+4:], tdxEntrySize-8)
	if _, err := ParseVersionedTable(bad); err == nil {
		t.Error("a TDX entry of the wrong size parsed")
	}
}

// BenchmarkDeriveTDX compares deriving a TDX member (the table event and
// RTMR3's extend) with the raw hashing that needs: two SHA-384s, of the
// 46-byte event and of the 96-byte extend. Report the ratio Derive/Hash.
func BenchmarkDeriveTDX(b *testing.B) {
	e := &TDXEntry{MRTD: [48]byte{1}, RTMR: [3][48]byte{{2}, {3}, {4}}}
	t := &VersionedTable{Kinds: []Kind{KindTDX}, Entries: []Entry{{}}, SNP: []*SNPEntry{nil}, TDX: []*TDXEntry{e}}
	d, err := newVMTableDeriver(t.Marshal(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Derive", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.DeriveTD(0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Hash", func(b *testing.B) {
		ev := make([]byte, len(TableEventTag)+32)
		ext := make([]byte, 96)
		for b.Loop() {
			h := sha512.Sum384(ev)
			ext[48] = h[0]
			h = sha512.Sum384(ext)
			ev[0] = h[0]
		}
	})
}
