package snp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/magesgx/mage/internal/ovmf"
	"github.com/magesgx/mage/internal/ovmf/ovmftest"
)

// debianOVMF is Debian 12's unified OVMF image (testdata/tdx/README.md).
func debianOVMF(tb testing.TB) []byte { return ovmftest.DebianOVMF(tb) }

// TestLaunchDigestReference: every launch of Debian's OVMF that
// virtee/sev-snp-measure computed (testdata/snp: 1, 2 and 4 vCPUs of five
// EPYC types, two guest feature sets) gives the same digest here.
func TestLaunchDigestReference(t *testing.T) {
	fw := debianOVMF(t)
	f, err := os.Open("../testdata/snp/launch-digests.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		var vcpus int
		var typ, gf, want string
		if _, err := fmtSscan(line, &vcpus, &typ, &gf, &want); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		features, err := strconv.ParseUint(gf, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		sig, ok := VCPUType(typ)
		if !ok {
			t.Fatalf("unknown vCPU type %s", typ)
		}
		got, err := LaunchDigest(fw, Options{VCPUs: vcpus, VCPUSignature: sig, GuestFeatures: features})
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("%d x %s, features %s: %x, sev-snp-measure %s", vcpus, typ, gf, got, want)
		}
		n++
	}
	if n != 30 {
		t.Errorf("%d vectors, want 30", n)
	}
}

func fmtSscan(line string, vcpus *int, typ, gf, want *string) (int, error) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return 0, errors.New("want 4 fields")
	}
	v, err := strconv.Atoi(f[0])
	*vcpus, *typ, *gf, *want = v, f[1], f[2], f[3]
	return 4, err
}

// TestHostileImages: images without the tables, or with broken SEV
// metadata, and bad options are refused with ErrFirmware.
func TestHostileImages(t *testing.T) {
	fw := debianOVMF(t)
	sig, _ := VCPUType("EPYC-v4")
	o := Options{VCPUs: 1, VCPUSignature: sig, GuestFeatures: 1}
	blk, err := ovmf.Block(fw, guidSEVMetadata)
	if err != nil {
		t.Fatal(err)
	}
	meta := len(fw) - int(binary.LittleEndian.Uint32(blk))
	corrupt := func(at int, b ...byte) []byte {
		c := bytes.Clone(fw)
		copy(c[at:], b)
		return c
	}
	for name, c := range map[string]struct {
		fw []byte
		o  Options
	}{
		"empty":        {nil, o},
		"not pages":    {fw[:len(fw)-1], o},
		"not ASEV":     {corrupt(meta, 'X'), o},
		"version 2":    {corrupt(meta+8, 2), o},
		"99 sections":  {corrupt(meta+12, 99), o},
		"unknown type": {corrupt(meta+16+8, 7), o},
		"half a page":  {corrupt(meta+16+4, 0x00, 0x08), o},
		// Every section 4 GiB - 4 KiB long: 64 Mi pages to record.
		"64 x 4 GiB": {hugeSections(fw, meta), o},
		"no vCPU":    {fw, Options{}},
		"1000 vCPUs": {fw, Options{VCPUs: 1000}},
	} {
		if _, err := LaunchDigest(c.fw, c.o); !errors.Is(err, ErrFirmware) {
			t.Errorf("%s: %v, want ErrFirmware", name, err)
		}
	}
	if s, err := Metadata(fw); err != nil || len(s) == 0 {
		t.Fatalf("metadata: %+v %v", s, err)
	}
}

// hugeSections returns fw with 64 secure-memory sections of 4 GiB - 4 KiB
// each in its SEV metadata (which has room for them in the Debian image:
// the bytes before the metadata's end are the firmware's own).
func hugeSections(fw []byte, meta int) []byte {
	c := bytes.Clone(fw)
	binary.LittleEndian.PutUint32(c[meta+4:], 16+12*maxSections)
	binary.LittleEndian.PutUint32(c[meta+12:], maxSections)
	for i := range maxSections {
		b := c[meta+16+12*i:]
		binary.LittleEndian.PutUint32(b, 0)
		binary.LittleEndian.PutUint32(b[4:], fourGiB-pageSize)
		binary.LittleEndian.PutUint32(b[8:], SectionSecMem)
	}
	return c
}

// FuzzMetadata: any image's tail parses or is refused, without a panic.
func FuzzMetadata(f *testing.F) {
	fw := debianOVMF(f)
	f.Add(fw[len(fw)-0x2000:])
	f.Fuzz(func(t *testing.T, b []byte) {
		Metadata(b)
		resetEIP(b)
	})
}

// testFile returns the bytes of a generated test file of n bytes: byte i
// is i*7+seed (testdata/snp/README.md, where the kernels and initrd of
// the direct-boot vectors come from).
func testFile(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

var testFiles = map[string][]byte{
	"kernel-a": testFile(300001, 1),
	"kernel-b": testFile(4096, 2),
	"initrd-a": testFile(123457, 3),
	"-":        nil,
}

// directBootVectors reads testdata/snp/direct-boot.tsv: the launch digests
// sev-snp-measure computed for direct boots of the AmdSev OVMF image's
// last page, with and without a precomputed firmware digest.
func directBootVectors(t *testing.T) []directBootVector {
	b, err := os.ReadFile("../testdata/snp/direct-boot.tsv")
	if err != nil {
		t.Fatal(err)
	}
	var vs []directBootVector
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 8 {
			t.Fatalf("%q: %d fields", line, len(f))
		}
		var v directBootVector
		if f[0] != "none" {
			d, err := hex.DecodeString(f[0])
			if err != nil || len(d) != 48 {
				t.Fatalf("%q: firmware digest", line)
			}
			v.fwDigest = (*[48]byte)(d)
		}
		v.vcpus, err = strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		sig, ok := VCPUType(f[2])
		if !ok {
			t.Fatalf("unknown vCPU type %s", f[2])
		}
		v.sig = sig
		if v.features, err = strconv.ParseUint(f[3], 0, 64); err != nil {
			t.Fatal(err)
		}
		kernel, ok1 := testFiles[f[4]]
		initrd, ok2 := testFiles[f[5]]
		if !ok1 || !ok2 {
			t.Fatalf("%q: unknown test file", line)
		}
		cmdline := f[6]
		if cmdline == "-" {
			cmdline = ""
		}
		v.boot, v.name = NewDirectBoot(kernel, initrd, cmdline), fmt.Sprintf("%s %s %s %s %s %q", f[1], f[2], f[3], f[4], f[5], cmdline)
		if f[0] != "none" {
			v.name = "seeded " + v.name
		}
		v.want = f[7]
		vs = append(vs, v)
	}
	return vs
}

type directBootVector struct {
	name     string
	fwDigest *[48]byte
	vcpus    int
	sig      uint32
	features uint64
	boot     *DirectBoot
	want     string
}

// TestDirectBootReference: every direct boot sev-snp-measure computed
// (1 and 3 vCPUs of three EPYC types, two feature sets, three kernels,
// initrds and command lines, with and without --snp-ovmf-hash) gives the
// same digest here, whole and through Cut.
func TestDirectBootReference(t *testing.T) {
	fw, err := os.ReadFile("../testdata/snp/ovmf_AmdSev_suffix.bin")
	if err != nil {
		t.Fatal(err)
	}
	vs := directBootVectors(t)
	if len(vs) != 72 {
		t.Errorf("%d vectors, want 72", len(vs))
	}
	for _, v := range vs {
		o := Options{VCPUs: v.vcpus, VCPUSignature: v.sig, GuestFeatures: v.features, Boot: v.boot, FirmwareDigest: v.fwDigest}
		got, err := LaunchDigest(fw, o)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if hex.EncodeToString(got[:]) != v.want {
			t.Errorf("%s: %x, sev-snp-measure %s", v.name, got, v.want)
		}
		l, err := Cut(fw, o)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if got, err := l.Digest(v.boot.Cmdline); err != nil || hex.EncodeToString(got[:]) != v.want {
			t.Errorf("%s: cut: %x, sev-snp-measure %s", v.name, got, v.want)
		}
		if l.HashesGPA != 0x810000 || l.TableOffset != 0xc00 || len(l.Suffix) != 15+v.vcpus {
			t.Errorf("%s: cut at %#x+%#x with %d pages after", v.name, l.HashesGPA, l.TableOffset, len(l.Suffix))
		}
		if other, _ := l.Digest(CmdlineHash("another")); other == got {
			t.Errorf("%s: another command line gives the same digest", v.name)
		}
	}
}

// TestDirectBootNeedsHashesSection: Debian's OVMF (no SNP_KERNEL_HASHES
// section) refuses a direct boot, as sev-snp-measure does.
func TestDirectBootNeedsHashesSection(t *testing.T) {
	o := Options{VCPUs: 1, VCPUSignature: Signature(25, 1, 1), GuestFeatures: 1, Boot: NewDirectBoot([]byte("k"), nil, "")}
	if _, err := LaunchDigest(debianOVMF(t), o); !errors.Is(err, ErrFirmware) || !strings.Contains(err.Error(), "SNP_KERNEL_HASHES") {
		t.Errorf("direct boot on Debian's OVMF: %v", err)
	}
	if _, err := Cut(debianOVMF(t), Options{VCPUs: 1}); !errors.Is(err, ErrFirmware) {
		t.Errorf("Cut without a direct boot: %v", err)
	}
}

// TestHostileHashesTable: a hashes table placed outside the
// SNP_KERNEL_HASHES page, or spilling over its end, is refused.
func TestHostileHashesTable(t *testing.T) {
	orig, err := os.ReadFile("../testdata/snp/ovmf_AmdSev_suffix.bin")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{VCPUs: 1, VCPUSignature: Signature(25, 1, 1), GuestFeatures: 1, Boot: NewDirectBoot([]byte("k"), nil, "")}
	for _, gpa := range []uint32{0, 0x80f000, 0x810fb0, 0x811000, 0xffffffff} {
		fw := bytes.Clone(orig)
		blk, err := ovmf.Block(fw, guidHashTableRV)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(blk, gpa)
		if _, err := LaunchDigest(fw, o); !errors.Is(err, ErrFirmware) {
			t.Errorf("hashes table at %#x: %v", gpa, err)
		}
	}
}
