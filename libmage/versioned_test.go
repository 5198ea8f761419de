//go:build cgo

package libmage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/snp"
)

// mixedMembers returns two SDK enclaves and two Gramine enclaves (the
// stock manifest of the vector named, and the same with another
// entrypoint)
// to sign together, and the libpal the Gramine ones run.
func mixedMembers(t testing.TB, manifest string) ([]mage.AnyMember, []byte, *gramine.Libpal) {
	palRaw := read(t, "../gramine/fakepal.so")
	pal, err := gramine.ParseLibpal(palRaw)
	if err != nil {
		t.Fatal(err)
	}
	gkey, err := sgx.LoadSigningKey(read(t, "../gramine/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	base := string(read(t, "../gramine/single/"+manifest+"/"+manifest+".manifest.sgx"))
	variant := strings.Replace(base, `entrypoint = "/app"`, `entrypoint = "/other"`, 1)
	var ms []mage.AnyMember
	for i, e := range []struct{ elf, cfg, key string }{{"g1_m0", "cG1_group_a", "g1_k0"}, {"g1_m1", "cG1_group_b", "g1_k1"}} {
		cfg, err := sgxsdk.ParseConfig(read(t, "configs/"+e.cfg+".config.xml"))
		if err != nil {
			t.Fatal(err)
		}
		key, err := sgx.LoadSigningKey(read(t, "keys/"+e.key+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, mage.AnyMember{SDK: &mage.Member{Name: "sdk" + string(rune('a'+i)), ELF: read(t, "enclaves/"+e.elf+".so"), Config: cfg, Key: key}})
	}
	for i, m := range []string{base, variant} {
		ms = append(ms, mage.AnyMember{Gramine: &mage.GramineMember{Name: "gram" + string(rune('a'+i)), Manifest: []byte(m), Key: gkey}})
	}
	return ms, palRaw, pal
}

// cLibpal parses a libpal.so in C, failing tb if it cannot, and frees it
// when tb ends.
func cLibpal(tb testing.TB, raw []byte) *Libpal {
	tb.Helper()
	p, st := ParseLibpal(raw)
	if st != OK {
		tb.Fatalf("mage_libpal_parse: %v", st)
	}
	tb.Cleanup(p.Free)
	return p
}

// TestVersionedTables: on a mixed group's versioned table and on its
// Merkle table, the C library derives every member (SDK and Gramine, the
// latter by replaying Gramine's suffix) exactly as the signer measured it;
// without the libpal it says so; with another libpal it refuses.
func TestVersionedTables(t *testing.T) {
	ms, palRaw, pal := mixedMembers(t, "d6_defaults") // no EDMM: the free heap is replayed
	cpal := cLibpal(t, palRaw)
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for _, merkle := range []bool{false, true} {
		g, err := mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date, Merkle: merkle})
		if err != nil {
			t.Fatal(err)
		}
		sec := g.Section
		if n, st := Count(sec); st != OK || n != uint64(len(ms)) {
			t.Fatalf("merkle %t: mage_count %d %v", merkle, n, st)
		}
		for i, sm := range g.Members {
			var got [32]byte
			var st Status
			if merkle {
				var idx uint64
				got, idx, st = MerkleDerive(sec, cpal, g.Proofs[i].Marshal())
				if idx != uint64(i) {
					t.Errorf("merkle: proof %d gives index %d", i, idx)
				}
				if _, _, st := MerkleDerive(sec, nil, g.Proofs[i].Marshal()); (sm.Kind == mage.KindGramine) != (st == ErrPal) {
					t.Errorf("merkle: member %d (%s) without the libpal: %v", i, sm.Kind, st)
				}
			} else {
				got, st = DerivePal(sec, cpal, uint64(i))
				if _, st := Derive(sec, uint64(i)); (sm.Kind == mage.KindGramine) != (st == ErrPal) {
					t.Errorf("member %d (%s) without the libpal: %v", i, sm.Kind, st)
				}
				if FindPal(sec, cpal, sm.MRENCLAVE) != int64(i) {
					t.Errorf("mage_find_pal of member %d", i)
				}
			}
			if st != OK || got != sm.MRENCLAVE {
				t.Errorf("merkle %t: member %d (%s): C derives %x (%v), the signer measured %s", merkle, i, sm.Kind, got, st, sm.MRENCLAVE)
			}
		}
		if merkle {
			// A proof for another member's entry, a path of the wrong
			// length, and a classic call on a Merkle table.
			p := *g.Proofs[1]
			p.Entry = g.Proofs[2].Entry
			if _, _, st := MerkleDerive(sec, cpal, p.Marshal()); st != ErrProof {
				t.Errorf("a proof with another entry: %v", st)
			}
			b := g.Proofs[0].Marshal()
			if _, _, st := MerkleDerive(sec, cpal, b[:len(b)-1]); st != ErrProof {
				t.Errorf("a truncated proof: %v", st)
			}
			if _, st := DerivePal(sec, cpal, 0); st != ErrMerkle {
				t.Errorf("mage_derive on a Merkle table: %v", st)
			}
		} else {
			// Another libpal: refused by its hash.
			other := append([]byte(nil), palRaw...)
			other[len(other)-1] ^= 1
			if op, st := ParseLibpal(other); st == OK {
				if _, st := DerivePal(sec, op, 2); st != ErrPalMM {
					t.Errorf("another libpal: %v", st)
				}
				op.Free()
			}
			if self, st := TrustPal(sec, cpal, g.Members[3].MRENCLAVE); st != OK || self != 3 {
				t.Errorf("mage_trust_pal: %d %v", self, st)
			}
			if _, st := Trust(sec, g.Members[3].MRENCLAVE); st != ErrPal {
				t.Errorf("mage_trust without the libpal, pinning a Gramine member: %v", st)
			}
		}
	}
}

// fuzzGroups signs the mixed group once per process, versioned and Merkle.
func fuzzGroups(f *testing.F) (versioned, merkle *mage.SignedAnyGroup, palRaw []byte, pal *gramine.Libpal) {
	ms, palRaw, pal := mixedMembers(f, "d5_edmm_t1_64M_nodebug") // EDMM and one thread: a short suffix, fast fuzzing
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	var err error
	if versioned, err = mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date}); err != nil {
		f.Fatal(err)
	}
	if merkle, err = mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date, Merkle: true}); err != nil {
		f.Fatal(err)
	}
	return versioned, merkle, palRaw, pal
}

// bigOffset reports whether the entry offset at b[at:] (an entry's second
// u64) names a Gramine enclave so large that replaying its free heap
// dominates a fuzzing run (over 128 MiB; bounded, as in Go: at most 64 GiB of EADD
// records, but slow).
func bigOffset(b []byte, at int) bool {
	return at+16 <= len(b) && binary.LittleEndian.Uint64(b[at+8:]) > 1<<27
}

// bigSection reports whether a versioned section has such an entry, or
// names more than 16 Gramine threads (each adds 90 measured pages).
func bigSection(sec []byte) bool {
	if len(sec) >= 24 && binary.LittleEndian.Uint32(sec[20:]) > 16 {
		return true
	}
	if len(sec) >= 16 && binary.LittleEndian.Uint32(sec[12:])&1 != 0 {
		return false // a Merkle table: its entries are in the proofs
	}
	for at := 64 + 8; at+48 <= len(sec); at += 56 {
		if bigOffset(sec, at) {
			return true
		}
	}
	return false
}

// FuzzVersioned compares mage_derive_pal with package mage on versioned
// sections of SDK and Gramine members: the same MRENCLAVE for every member
// Go derives, a refusal wherever Go refuses (C derives SDK members of a
// table whose libpal hash it was not given, which Go refuses up front).
func FuzzVersioned(f *testing.F) {
	versioned, _, palRaw, pal := fuzzGroups(f)
	cpal := cLibpal(f, palRaw)
	f.Add(versioned.Section)
	if vs, err := sgxsdk.ParseSigned(vmGroup(f).Members[0].File); err == nil {
		f.Add(vs.ELF.MageSection()) // with an SNP and a TDX member
	}
	f.Fuzz(func(t *testing.T, sec []byte) {
		if bigSection(sec) {
			t.Skip("a Gramine enclave over 128 MiB")
		}
		d, goErr := mage.NewSectionDeriver(sec, pal)
		n, st := Count(sec)
		if goErr != nil {
			if st == OK && !strings.Contains(goErr.Error(), "libpal") {
				t.Fatalf("Go refuses (%v), C counts %d", goErr, n)
			}
			for i := range min(n, 64) {
				if mr, st := DerivePal(sec, cpal, i); st == OK && !strings.Contains(goErr.Error(), "libpal") {
					t.Fatalf("Go refuses (%v), C derives member %d as %x", goErr, i, mr)
				}
			}
			return
		}
		if d.IsMerkle() {
			return // FuzzMerkle
		}
		if st != OK || n != uint64(d.Len()) {
			t.Fatalf("Go has %d members, C counts %d (%v)", d.Len(), n, st)
		}
		for i := range min(d.Len(), 64) {
			want, werr := d.Derive(i)
			got, st := DerivePal(sec, cpal, uint64(i))
			if (werr == nil) != (st == OK) || (werr == nil && got != want) {
				t.Fatalf("member %d: Go %s (%v), C %x (%v)", i, want, werr, got, st)
			}
			k, st := Kind(sec, uint64(i))
			if st != OK || k != uint(d.Kind(i)) {
				t.Fatalf("member %d: Go kind %s, C %d (%v)", i, d.Kind(i), k, st)
			}
			switch d.Kind(i) {
			case mage.KindSNP:
				want, werr := d.DeriveLaunch(i)
				got, st := DeriveSNP(sec, uint64(i))
				if werr != nil || st != OK || got != want {
					t.Fatalf("SNP member %d: Go %x (%v), C %x (%v)", i, want, werr, got, st)
				}
			case mage.KindTDX:
				want, werr := d.DeriveTD(i)
				m, r, st := DeriveTDX(sec, uint64(i))
				if werr != nil || st != OK || m != want.MRTD || r != want.RTMR {
					t.Fatalf("TDX member %d: Go %v, C %v", i, werr, st)
				}
			}
		}
	})
}

// FuzzMerkle compares mage_merkle_derive with package mage on a Merkle
// section and a proof, both fuzzed (one page of section, as every Merkle
// table has).
func FuzzMerkle(f *testing.F) {
	_, merkle, palRaw, pal := fuzzGroups(f)
	cpal := cLibpal(f, palRaw)
	// One input: the proof, then the section (its last 4096 bytes; the
	// rest, if any, is the proof), so the mutator works on both at once.
	for _, p := range merkle.Proofs {
		f.Add(append(p.Marshal(), merkle.Section...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cut := max(0, len(in)-4096)
		proof, sec := in[:cut], in[cut:]
		if bigOffset(proof, 16) || bigSection(sec) {
			t.Skip("a Gramine enclave over 128 MiB")
		}
		got, idx, st := MerkleDerive(sec, cpal, proof)
		d, goErr := mage.NewSectionDeriver(sec, pal)
		if goErr == nil && !d.IsMerkle() {
			if st == OK {
				t.Fatal("C derives a proof against a table that is not a Merkle table")
			}
			return
		}
		var want sgx.Measurement
		var p *mage.MembershipProof
		if goErr == nil {
			if p, goErr = mage.ParseMembershipProof(proof); goErr == nil {
				want, goErr = d.DeriveProof(p)
			}
		}
		switch {
		case goErr == nil && (st != OK || got != want || idx != p.Index):
			t.Fatalf("Go derives member %d as %s, C %d %x (%v)", p.Index, want, idx, got, st)
		case goErr != nil && st == OK && !strings.Contains(goErr.Error(), "libpal"):
			t.Fatalf("Go refuses (%v), C derives member %d as %x", goErr, idx, got)
		}
	})
}

// vmGroup signs two SDK enclaves, an SEV-SNP VM (the AmdSev image's last
// page, a direct boot) and a TDX trust domain into one versioned table.
func vmGroup(t testing.TB) *mage.SignedAnyGroup {
	ms, _, _ := mixedMembers(t, "d2_t4_256M_nodebug_isv")
	fw := read(t, "../snp/ovmf_AmdSev_suffix.bin")
	var fd [48]byte
	hex.Decode(fd[:], []byte("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"))
	l, err := snp.Cut(fw, snp.Options{VCPUs: 3, VCPUSignature: snp.Signature(25, 1, 1), GuestFeatures: 1, FirmwareDigest: &fd, Boot: snp.NewDirectBoot([]byte("kernel"), []byte("initrd"), "")})
	if err != nil {
		t.Fatal(err)
	}
	vm := mage.AnyMember{SNP: &mage.SNPMember{Name: "vm", Entry: mage.SNPEntry{Launch: *l, Cmdline: "console=ttyS0 quiet"}}}
	td := mage.AnyMember{TDX: &mage.TDXMember{Name: "td", Entry: mage.TDXEntry{MRTD: [48]byte{1}, RTMR: [3][48]byte{{2}, {3}, {4}}}}}
	g, err := mage.SignAnyGroup(context.Background(), []mage.AnyMember{ms[0], vm, td, ms[1]}, nil, mage.SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestCVMKinds: C == Go on a table with VM members. The C library counts
// and classifies every member, derives the SDK members' MRENCLAVEs (and
// finds them), refuses mage_derive for a VM member, derives the SNP
// member's launch digest and the TDX member's measurement as package mage
// does; and over every one-byte change of the table, C accepts exactly
// the sections Go accepts, deriving the same.
func TestCVMKinds(t *testing.T) {
	g := vmGroup(t)
	s, err := sgxsdk.ParseSigned(g.Members[0].File)
	if err != nil {
		t.Fatal(err)
	}
	section := s.ELF.MageSection()
	check := func(section []byte) (ok bool, out [4][]byte) {
		n, st := Count(section)
		if st != OK {
			return false, out
		}
		if n != 4 {
			t.Fatalf("count %d", n)
		}
		for i := range uint64(4) {
			k, st := Kind(section, i)
			if st != OK {
				t.Fatalf("kind %d: %v", i, st)
			}
			switch k {
			case 3:
				l, st := DeriveSNP(section, i)
				if st != OK {
					t.Fatalf("derive snp %d: %v", i, st)
				}
				out[i] = l[:]
			case 4:
				m, r, st := DeriveTDX(section, i)
				if st != OK {
					t.Fatalf("derive tdx %d: %v", i, st)
				}
				out[i] = append(m[:], append(append(append(r[0][:], r[1][:]...), r[2][:]...), r[3][:]...)...)
			default:
				mr, st := Derive(section, i)
				if st != OK {
					t.Fatalf("derive %d: %v", i, st)
				}
				out[i] = mr[:]
			}
		}
		return true, out
	}
	goCheck := func(section []byte) (ok bool, out [4][]byte) {
		d, err := mage.NewSectionDeriver(section, nil)
		if err != nil {
			return false, out
		}
		all, err := d.DeriveMembers()
		if err != nil {
			return false, out
		}
		for i, x := range all {
			switch x.Kind {
			case mage.KindSNP:
				out[i] = x.Launch[:]
			case mage.KindTDX:
				b := append([]byte{}, x.TD.MRTD[:]...)
				for _, r := range x.TD.RTMR {
					b = append(b, r[:]...)
				}
				out[i] = b
			default:
				out[i] = x.MRENCLAVE[:]
			}
		}
		return true, out
	}
	ok, got := check(section)
	gok, want := goCheck(section)
	if !ok || !gok || !equalOuts(got, want) {
		t.Fatalf("C and Go differ on the group: C %v, Go %v", ok, gok)
	}
	td := g.Members[2].TD
	if !bytes.Equal(got[1], g.Members[1].Launch[:]) || !bytes.Equal(got[0], g.Members[0].MRENCLAVE[:]) || !bytes.Equal(got[2][:48], td.MRTD[:]) || !bytes.Equal(got[2][192:], td.RTMR[3][:]) {
		t.Error("C derives other measurements than signing recorded")
	}
	if _, st := Derive(section, 1); st != ErrVM {
		t.Errorf("mage_derive of a VM member: %v", st)
	}
	if i := Find(section, g.Members[3].MRENCLAVE); i != 3 {
		t.Errorf("find member 3: %d", i)
	}
	if _, _, st := DeriveTDX(section, 1); st != ErrIndex {
		t.Errorf("an SNP member derived as a TD: %v", st)
	}
	// Every one-byte change of the table proper (header and records).
	end := len(g.Payload)
	for i := 0; i < end; i++ {
		for _, x := range []byte{1, 0x80} {
			bad := bytes.Clone(section)
			bad[i] ^= x
			ok, got := check(bad)
			gok, want := goCheck(bad)
			if ok != gok || (ok && !equalOuts(got, want)) {
				t.Fatalf("byte %d ^ %#x: C accepts %v, Go %v", i, x, ok, gok)
			}
		}
	}
}

func equalOuts(a, b [4][]byte) bool {
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// vmLines is what the driver prints with -vm for a section, through cgo.
func vmLines(sec []byte, max int) []string {
	var out []string
	for i := range uint64(max) {
		k, st := Kind(sec, i)
		if st != OK {
			k = 0
		}
		out = append(out, fmt.Sprintf("kind %d %d %d", i, int(st), k))
		l, st := DeriveSNP(sec, i)
		line := fmt.Sprintf("snp %d %d ", i, int(st))
		if st == OK {
			line += hex.EncodeToString(l[:])
		}
		out = append(out, line)
		m, r, st := DeriveTDX(sec, i)
		line = fmt.Sprintf("tdx %d %d ", i, int(st))
		if st == OK {
			line += hex.EncodeToString(m[:]) + hex.EncodeToString(r[0][:]) + hex.EncodeToString(r[1][:]) + hex.EncodeToString(r[2][:]) + hex.EncodeToString(r[3][:])
		}
		out = append(out, line)
	}
	return out
}

// TestSanitizersVM runs mage_kind, mage_derive_snp and mage_derive_tdx
// under AddressSanitizer and UndefinedBehaviorSanitizer over a table with
// VM members and 600 one- and two-byte changes of it (each in a buffer of
// exactly its size), and compares the results with the library built
// without them.
func TestSanitizersVM(t *testing.T) {
	bin, dir := sanitizedDriver(t)
	s, err := sgxsdk.ParseSigned(vmGroup(t).Members[0].File)
	if err != nil {
		t.Fatal(err)
	}
	sec := s.ELF.MageSection()
	r := rand.New(rand.NewPCG(7, 8))
	var files, want []string
	for i := range 601 {
		b := bytes.Clone(sec)
		if i > 0 {
			for range 1 + i%2 {
				b[r.IntN(1200)] ^= byte(1 + r.IntN(255))
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("%03d.bin", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		for _, l := range vmLines(b, 5) {
			want = append(want, strings.TrimSpace(l))
		}
	}
	same(t, "sanitized C", runDriver(t, bin, append([]string{"-vm", "5"}, files...)...), want)
}
