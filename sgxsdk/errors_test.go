package sgxsdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
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
