package snp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
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
