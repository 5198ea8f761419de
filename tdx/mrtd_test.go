package tdx

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/magesgx/mage/internal/ovmf/ovmftest"
)

// debianOVMF is Debian 12's unified OVMF image (testdata/tdx/README.md).
func debianOVMF(tb testing.TB) []byte { return ovmftest.DebianOVMF(tb) }

// TestMRTDReference: Debian's OVMF gives the MRTD google/gce-tcb-verifier
// computes for it, bit for bit.
func TestMRTDReference(t *testing.T) {
	const want = "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47"
	fw := debianOVMF(t)
	got, err := MRTD(fw)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("MRTD %x, gce-tcb-verifier %s", got, want)
	}
	s, err := ParseMetadata(fw)
	if err != nil || len(s) != 6 || s[0].Type != SectionBFV || s[0].Attributes != AttrExtendMR || s[4].Type != SectionTDHOB {
		t.Errorf("metadata: %+v %v", s, err)
	}
}

// TestHostileFirmware: truncated and corrupted images are refused with
// ErrFirmware, never a panic.
func TestHostileFirmware(t *testing.T) {
	fw := debianOVMF(t)
	s, _ := ParseMetadata(fw)
	blk, _ := guidBlock(fw, guidMetadataBlock)
	meta := len(fw) - int(binary.LittleEndian.Uint32(blk))
	set := func(at int, v uint32) []byte {
		b := bytes.Clone(fw)
		binary.LittleEndian.PutUint32(b[at:], v)
		return b
	}
	sec := func(i, field int) int { return meta + 16 + 32*i + field }
	// A temporary-memory section moved above every other, 2^60 bytes long:
	// well formed but for its size, whose pages would take years to record.
	huge := bytes.Clone(fw)
	binary.LittleEndian.PutUint64(huge[sec(2, 8):], 1<<40)
	binary.LittleEndian.PutUint64(huge[sec(2, 16):], 1<<60)
	cases := map[string][]byte{
		"empty":                nil,
		"truncated":            fw[:len(fw)/2],
		"no footer":            set(len(fw)-0x20-16, 0),
		"metadata offset 0":    set(len(fw)-0x20-int(binary.LittleEndian.Uint16(fw[len(fw)-0x20-18:])), 0),
		"version 2":            set(meta+8, 2),
		"1000 sections":        set(meta+12, 1000),
		"length":               set(meta+4, 12),
		"unknown type":         set(sec(2, 24), 9),
		"data past the image":  set(sec(0, 0), uint32(len(fw))),
		"measured TD HOB":      set(sec(4, 28), AttrExtendMR),
		"overlap":              set(sec(3, 8), uint32(s[2].Base)),
		"unaligned":            set(sec(2, 8), uint32(s[2].Base)+1),
		"2^60 bytes of memory": huge,
	}
	for name, b := range cases {
		if _, err := MRTD(b); !errors.Is(err, ErrFirmware) {
			t.Errorf("%s: %v, want ErrFirmware", name, err)
		}
	}
}

// FuzzParseMetadata: any image parses or is refused, without a panic, and
// an accepted one measures.
func FuzzParseMetadata(f *testing.F) {
	fw := debianOVMF(f)
	// The tail holds the GUIDed table and the metadata: fuzz a small image
	// made of the real tail.
	tail := fw[len(fw)-0x1000:]
	f.Add(tail)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseMetadata(b); err == nil {
			if _, err := MRTD(b); err != nil {
				t.Fatal(err)
			}
		}
	})
}
