package sgxsdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestConfigErrors checks that the signer's config rules are enforced with
// errors that name the key.
func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"<EnclaveConfiguration><ProdID>0x10000</ProdID></EnclaveConfiguration>":                                               "ProdID",
		"<EnclaveConfiguration><ProdID>-1</ProdID></EnclaveConfiguration>":                                                    "negative",
		"<EnclaveConfiguration><ProdID>1</ProdID><ProdID>2</ProdID></EnclaveConfiguration>":                                   "twice",
		"<EnclaveConfiguration><Bogus>1</Bogus></EnclaveConfiguration>":                                                       "unknown key",
		"<EnclaveConfiguration><ProdID a='1'>1</ProdID></EnclaveConfiguration>":                                               "attributes",
		"<EnclaveConfiguration><ProdID>12abc</ProdID></EnclaveConfiguration>":                                                 "not a number",
		"<EnclaveConfiguration><ProdID>0b1</ProdID></EnclaveConfiguration>":                                                   "not a number",
		"<EnclaveConfiguration><ProdID></ProdID></EnclaveConfiguration>":                                                      "no value",
		"<Enclave><ProdID>1</ProdID></Enclave>":                                                                               "root element",
		"<EnclaveConfiguration>text<ProdID>1</ProdID></EnclaveConfiguration>":                                                 "text",
		"<EnclaveConfiguration><ProdID>1</ProdID>":                                                                            "XML",
		"<EnclaveConfiguration><StackMaxSize>0x2001</StackMaxSize></EnclaveConfiguration>":                                    "page-aligned",
		"<EnclaveConfiguration><StackMaxSize>0x2000</StackMaxSize><StackMinSize>0x3000</StackMinSize></EnclaveConfiguration>": "StackMinSize",
		"<EnclaveConfiguration><HeapMinSize>0x3000</HeapMinSize><HeapMaxSize>0x2000</HeapMaxSize></EnclaveConfiguration>":     "HeapMinSize",
		"<EnclaveConfiguration><HeapInitSize>0x3000</HeapInitSize><HeapMaxSize>0x2000</HeapMaxSize></EnclaveConfiguration>":   "HeapInitSize",
		"<EnclaveConfiguration><HW>1</HW></EnclaveConfiguration>":                                                             "LaunchKey",
		"<EnclaveConfiguration><TCSNum>4</TCSNum><TCSMaxNum>2</TCSMaxNum></EnclaveConfiguration>":                             "TCSMaxNum",
		"<EnclaveConfiguration><TCSNum>2</TCSNum><TCSMinPool>3</TCSMinPool></EnclaveConfiguration>":                           "TCSMinPool",
		"<EnclaveConfiguration><ISVFAMILYID_H>1</ISVFAMILYID_H></EnclaveConfiguration>":                                       "EnableKSS",
	}
	for in, want := range cases {
		_, err := ParseConfig([]byte(in))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", in, err, want)
		}
	}
	c, err := ParseConfig([]byte("<?xml version='1.0'?>\n<!-- c -->\n<EnclaveConfiguration>\n  <ProdID>010</ProdID>\n  <ISVSVN>0x1F</ISVSVN>\n</EnclaveConfiguration>\n"))
	if err != nil || c.ProdID != 8 || c.ISVSVN != 31 {
		t.Fatalf("octal/hex values: %+v %v", c, err)
	}
}

// TestELFErrors corrupts a real enclave in targeted ways; each must be
// refused with an error naming the problem, never a panic.
func TestELFErrors(t *testing.T) {
	base := read(t, "enclaves/g1_m0.so")
	le := binary.LittleEndian
	e, err := ParseELF(base)
	if err != nil {
		t.Fatal(err)
	}
	mageHdr := func() int { // offset of the .sgx_mage section header
		shoff := int(le.Uint64(base[40:]))
		for i, s := range e.Sections() {
			if s.Name == MageSectionName {
				return shoff + i*shdrSize
			}
		}
		t.Fatal("no .sgx_mage")
		return 0
	}
	cases := []struct {
		name string
		mod  func(b []byte) []byte
		want string
	}{
		{"truncated", func(b []byte) []byte { return b[:40] }, "shorter than an ELF header"},
		{"truncated program headers", func(b []byte) []byte { return b[:100] }, "beyond the end"},
		{"bad magic", func(b []byte) []byte { b[1] = 'X'; return b }, "bad magic"},
		{"32-bit", func(b []byte) []byte { b[4] = 1; return b }, "64-bit"},
		{"executable", func(b []byte) []byte { le.PutUint16(b[16:], 2); return b }, "ET_DYN"},
		{"arm", func(b []byte) []byte { le.PutUint16(b[18:], 183); return b }, "x86-64"},
		{"section headers beyond file", func(b []byte) []byte { le.PutUint64(b[40:], 1<<40); return b }, "section headers"},
		{"mage misaligned", func(b []byte) []byte { h := mageHdr(); le.PutUint64(b[h+16:], le.Uint64(b[h+16:])+16); return b }, "not page-aligned"},
		{"mage size", func(b []byte) []byte { h := mageHdr(); le.PutUint64(b[h+32:], 4000); return b }, "multiple"},
		{"mage writable", func(b []byte) []byte { h := mageHdr(); le.PutUint64(b[h+8:], le.Uint64(b[h+8:])|1); return b }, "writable"},
		{"no metadata note", func(b []byte) []byte {
			i := bytes.Index(b, []byte(".note.sgxmeta"))
			b[i+1] = 'x'
			return b
		}, ".note.sgxmeta"},
	}
	for _, c := range cases {
		b := c.mod(bytes.Clone(base))
		_, err := ParseELF(b)
		if !errors.Is(err, ErrELF) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrELF mentioning %q", c.name, err, c.want)
		}
	}
}

// TestTamperedSigned flips bytes of a signed file: a change in a measured
// page or in the metadata changes the replayed MRENCLAVE (or is refused).
func TestTamperedSigned(t *testing.T) {
	base := read(t, "signed/g1_v0.signed.so")
	s, _ := ParseSigned(base)
	want, err := s.Measure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	meta := int(s.ELF.MetadataOffset)
	for _, off := range []int{0x1010, 0x2050, 0x3010 /* .sgx_mage */, 0x4f08, meta + 24 /* ssa frame size */, meta + 40 /* enclave size */, meta + 1960 + 16 /* global data template */} {
		b := bytes.Clone(base)
		b[off] ^= 0x40
		s, err := ParseSigned(b)
		if err != nil {
			continue
		}
		got, err := s.Measure(t.Context())
		if err == nil && got == want {
			t.Errorf("flip at %#x: MRENCLAVE unchanged", off)
		}
	}
}

// TestSegmentsInsideEnclave: a PT_LOAD segment that runs outside
// [0, enclave_size) or over the layout (heap, TCS, stacks) is refused by
// the loader that measure, sign and the simulator share, before any
// hashing: hardware would fault on EADD outside ELRANGE or on a page added
// twice. (Issue 9, item 10.)
func TestSegmentsInsideEnclave(t *testing.T) {
	le := binary.LittleEndian
	lastLoad := func(b []byte) int { // offset of the last PT_LOAD header
		phoff := int(le.Uint64(b[32:]))
		last := -1
		for i := range int(le.Uint16(b[56:])) {
			if le.Uint32(b[phoff+i*phdrSize:]) == ptLoad {
				last = phoff + i*phdrSize
			}
		}
		return last
	}
	grow := func(by uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			h := lastLoad(b)
			le.PutUint64(b[h+40:], le.Uint64(b[h+40:])+by)
			return b
		}
	}
	signed := read(t, "signed/g1_v0.signed.so")
	s, err := ParseSigned(signed)
	if err != nil {
		t.Fatal(err)
	}
	size := s.Metadata[0].EnclaveSize
	for name, mod := range map[string]func([]byte) []byte{
		"past enclave_size":           grow(size),
		"32M pages from a small file": grow(0x1f00000000),
		"over the heap":               grow(0x20000),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			b := mod(bytes.Clone(signed))
			s, err := ParseSigned(b)
			if err == nil {
				_, err = s.Measure(ctx)
			}
			if !errors.Is(err, ErrLayout) && !errors.Is(err, ErrELF) {
				t.Errorf("signed file: %v, want ErrLayout", err)
			}
		})
	}
}

// hostileSections appends n extra section headers to an enclave: every
// other one an executable section, the rest relocation sections over
// (almost) the whole file, each at a different offset.
func hostileSections(t *testing.T, base []byte, n int) []byte {
	le := binary.LittleEndian
	shoff, shnum := le.Uint64(base[40:]), int(le.Uint16(base[60:]))
	b := bytes.Clone(base)
	b = append(b, make([]byte, 1<<20-len(b)%8)...) // 1 MiB of relocation entries to scan
	size := uint64(len(b))
	newOff := len(b)
	b = append(b, base[shoff:shoff+uint64(shnum*shdrSize)]...)
	for i := range n {
		h := make([]byte, shdrSize)
		if i%2 == 0 {
			le.PutUint32(h[4:], 1)                  // SHT_PROGBITS
			le.PutUint64(h[8:], 0x6)                // SHF_ALLOC|SHF_EXECINSTR
			le.PutUint64(h[16:], uint64(i)*0x10000) // addr
			le.PutUint64(h[32:], 0x10000)
		} else {
			le.PutUint32(h[4:], 4) // SHT_RELA
			le.PutUint64(h[24:], uint64(i))
			le.PutUint64(h[32:], size-uint64(i))
		}
		b = append(b, h...)
	}
	le.PutUint64(b[40:], uint64(newOff))
	le.PutUint16(b[60:], uint16(shnum+n))
	return b
}

// TestTextRelocationsBounded: relocation sections are scanned once each,
// so a file with a thousand section headers costs a thousand scans, not a
// million; more headers than an enclave can have are refused. (Issue 9,
// item 11: before, the cost grew with headers squared times file size.)
func TestTextRelocationsBounded(t *testing.T) {
	base := read(t, "enclaves/g1_m0.so")
	e, err := ParseELF(hostileSections(t, base, 1000))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	e.textRelocations(func(uint64) { n++ }) // 500 scans of 1 MiB; before, 500 x 500
	if n == 0 {
		t.Error("no text relocation found among the hostile sections")
	}
	if _, err := ParseELF(hostileSections(t, base, maxSections)); !errors.Is(err, ErrELF) || !strings.Contains(err.Error(), "section headers") {
		t.Errorf("%d+ section headers: %v, want ErrELF", maxSections, err)
	}
}

// relocationFlood is base grown to 16 MiB with one executable section and
// n relocation sections (REL and RELA, at every alignment) each covering
// the whole file.
func relocationFlood(t testing.TB, base []byte, n int) []byte {
	le := binary.LittleEndian
	shoff, shnum := le.Uint64(base[40:]), int(le.Uint16(base[60:]))
	b := bytes.Clone(base)
	b = append(b, make([]byte, 16<<20-len(b))...)
	size := uint64(len(b))
	newOff := len(b)
	b = append(b, base[shoff:shoff+uint64(shnum*shdrSize)]...)
	exec := make([]byte, shdrSize)
	le.PutUint32(exec[4:], 1)   // SHT_PROGBITS
	le.PutUint64(exec[8:], 0x6) // SHF_ALLOC|SHF_EXECINSTR, at address 0
	le.PutUint64(exec[32:], 0x1000)
	b = append(b, exec...)
	for i := range n {
		h := make([]byte, shdrSize)
		le.PutUint32(h[4:], []uint32{4, 9}[i%2]) // SHT_RELA, SHT_REL
		le.PutUint64(h[24:], uint64(i%64))
		le.PutUint64(h[32:], size-uint64(i%64))
		b = append(b, h...)
	}
	le.PutUint64(b[40:], uint64(newOff))
	le.PutUint16(b[60:], uint16(shnum+1+n))
	return b
}

// TestTextRelocationsLinear (issue 18, hole 8): a thousand relocation
// sections over a 16 MiB file read each entry once: for each entry size,
// at most one entry per byte of the file (before: every section scanned
// in full, 1000 x 16 MiB). BenchmarkTextRelocationsFlood gives the time.
func TestTextRelocationsLinear(t *testing.T) {
	b := relocationFlood(t, read(t, "enclaves/g1_m0.so"), 1000)
	e, err := ParseELF(b)
	if err != nil {
		t.Fatal(err)
	}
	var hits int
	scanned := e.textRelocations(func(uint64) { hits++ })
	if limit := uint64(2 * len(b)); scanned > limit || hits == 0 {
		t.Errorf("%d relocation entries read (%d text relocations) for %d sections over %d bytes, want at most %d", scanned, hits, 1000, len(b), limit)
	}
}

func BenchmarkTextRelocationsFlood(b *testing.B) {
	f := relocationFlood(b, read(b, "enclaves/g1_m0.so"), 1000)
	e, err := ParseELF(f)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		e.textRelocations(func(uint64) {})
	}
}
