package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx"
)

func tdata(t testing.TB, p string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cert(t testing.TB, p string) *x509.Certificate {
	b := tdata(t, p)
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func intelRoot(t testing.TB) *x509.Certificate {
	return cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")
}

// phalaTime is inside the Phala collateral's window, 2025-06-19T10:56:11Z
// .. 2025-07-19T10:23:17Z (SOURCES.md).
var phalaTime = time.Date(2025, 6, 25, 0, 0, 0, 0, time.UTC)

// Offsets in the Phala quote (version 3).
const (
	offBody     = HeaderSize
	offSigLen   = offBody + 384
	offSig      = offSigLen + 4
	offAttKey   = offSig + 64
	offQEReport = offAttKey + 64
	offQESig    = offQEReport + 384
	offAuthLen  = offQESig + 64
	offAuth     = offAuthLen + 2
	phalaAuth   = 32
	offCertType = offAuth + phalaAuth
)

func TestParsePhalaQuote(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Values stated in phala-dcap-qvl/SOURCES.md.
	if q.Header.Version != 3 || q.Header.AttKeyType != 2 || q.Header.TEEType != 0 || q.Header.QESVN != 10 || q.Header.PCESVN != 15 || q.Header.QEVendorID != IntelQEVendorID {
		t.Errorf("header %+v", q.Header)
	}
	if q.Body.MRENCLAVE.String() != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" ||
		q.Body.MRSIGNER.String() != "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6" ||
		q.Body.ISVProdID != 0 || q.Body.ISVSVN != 0 || q.Body.Attributes != (sgx.Attributes{Flags: 5, Xfrm: 0xe7}) {
		t.Errorf("body %+v", q.Body)
	}
	if !bytes.Equal(q.Body.ReportData[:], append([]byte("Hello, world!"), make([]byte, 51)...)) {
		t.Errorf("report data %x", q.Body.ReportData)
	}
	if q.QEReport.MRENCLAVE.String() != "96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4" || q.QEReport.ISVProdID != 1 || q.QEReport.ISVSVN != 10 {
		t.Errorf("QE report %+v", q.QEReport)
	}
	auth := make([]byte, 32)
	for i := range auth {
		auth[i] = byte(i)
	}
	if !bytes.Equal(q.QEAuthData, auth) || q.Certification.Type != CertPCKChain {
		t.Errorf("QE auth data %x, certification type %d", q.QEAuthData, q.Certification.Type)
	}
	// The quote's PEM ends with a NUL (as Intel's QE writes it), the
	// extracted file without.
	if !bytes.Equal(bytes.TrimSuffix(q.Certification.Data, []byte{0}), tdata(t, "phala-dcap-qvl/derived/pck_chain_from_quote.pem")) {
		t.Error("certification data differs from the chain extracted in SOURCES")
	}
	if again, err := q.Marshal(); err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("Marshal does not round-trip: %v", err)
	}
	// The Quote does not alias the input.
	raw[offBody+64] ^= 1
	if q.Body.MRENCLAVE[0] != 0x33 || !bytes.Equal(q.SignedBytes()[offBody+64:offBody+65], []byte{0x33}) {
		t.Error("Quote aliases the parsed bytes")
	}
	chain, err := q.PCKChain()
	if err != nil || len(chain) != 3 {
		t.Fatalf("PCKChain: %d, %v", len(chain), err)
	}
	x, err := ParsePCKExtensions(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if x.FMSPC != [6]byte{0x00, 0xa0, 0x67, 0x11, 0, 0} || x.PCEID != [2]byte{} || x.PCESVN != 13 ||
		x.Components != [16]uint8{11, 11, 2, 2, 255, 1, 0} || len(x.PPID) != 16 {
		t.Errorf("PCK extension %+v", x)
	}
}

// TestReportBodyOffsets writes a distinct value at each field's offset of
// the 384-byte layout and checks the parsed fields, then the round trip.
func TestReportBodyOffsets(t *testing.T) {
	b := make([]byte, ReportBodySize)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	r, err := ParseReportBody(b)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	check := func(name string, got []byte, off int) {
		if !bytes.Equal(got, b[off:off+len(got)]) {
			t.Errorf("%s: not at offset %d", name, off)
		}
	}
	check("cpusvn", r.CPUSVN[:], 0)
	check("isvextprodid", r.ISVExtProdID[:], 32)
	check("mrenclave", r.MRENCLAVE[:], 64)
	check("mrsigner", r.MRSIGNER[:], 128)
	check("configid", r.ConfigID[:], 192)
	check("isvfamilyid", r.ISVFamilyID[:], 304)
	check("reportdata", r.ReportData[:], 320)
	if r.MiscSelect != le.Uint32(b[16:]) || r.Attributes.Flags != le.Uint64(b[48:]) || r.Attributes.Xfrm != le.Uint64(b[56:]) ||
		r.ISVProdID != le.Uint16(b[256:]) || r.ISVSVN != le.Uint16(b[258:]) || r.ConfigSVN != le.Uint16(b[260:]) {
		t.Errorf("integer fields: %+v", r)
	}
	if !bytes.Equal(r.Marshal(), b) {
		t.Error("Marshal does not round-trip (reserved bytes lost?)")
	}
	for _, n := range []int{0, 383, 385} {
		if _, err := ParseReportBody(make([]byte, n)); err == nil {
			t.Errorf("report body of %d bytes accepted", n)
		}
	}
}

// TestParseTruncated parses every prefix of the real quote and the quote
// with one byte more: all must fail with ErrFormat, none panic.
func TestParseTruncated(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	for n := range len(raw) {
		if _, err := ParseQuote(raw[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ParseQuote(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrFormat) {
		t.Error("trailing byte accepted")
	}
}

func TestParseFieldErrors(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	le := binary.LittleEndian
	cases := []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"version 5", func(b []byte) []byte { b[0] = 5; return b }},
		{"version 2", func(b []byte) []byte { b[0] = 2; return b }},
		{"att key type 3 (ECDSA-384)", func(b []byte) []byte { b[2] = 3; return b }},
		{"tee type TDX", func(b []byte) []byte { b[4] = 0x81; return b }},
		{"signature length +1", func(b []byte) []byte { le.PutUint32(b[offSigLen:], le.Uint32(b[offSigLen:])+1); return b }},
		{"signature length -1", func(b []byte) []byte { le.PutUint32(b[offSigLen:], le.Uint32(b[offSigLen:])-1); return b }},
		{"auth data size past the end", func(b []byte) []byte { le.PutUint16(b[offAuthLen:], 0xffff); return b }},
		{"auth data size +1", func(b []byte) []byte { le.PutUint16(b[offAuthLen:], phalaAuth+1); return b }},
		{"certification type 6 in v3", func(b []byte) []byte { le.PutUint16(b[offCertType:], 6); return b }},
		{"certification type 7", func(b []byte) []byte { le.PutUint16(b[offCertType:], 7); return b }},
		{"certification type 0", func(b []byte) []byte { le.PutUint16(b[offCertType:], 0); return b }},
		{"certification size +1", func(b []byte) []byte { le.PutUint32(b[offCertType+2:], le.Uint32(b[offCertType+2:])+1); return b }},
		{"certification size huge", func(b []byte) []byte { le.PutUint32(b[offCertType+2:], 0xffffffff); return b }},
		{"certification type 1 with the chain's size", func(b []byte) []byte { le.PutUint16(b[offCertType:], 1); return b }},
	}
	for _, c := range cases {
		_, err := ParseQuote(c.mod(bytes.Clone(raw)))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", c.name, err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

func TestCertificationDataTypes(t *testing.T) {
	q, err := ParseQuote(tdata(t, "intel-qvl-sampledata-TESTPKI/quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	// Values stated in intel-qvl-sampledata-TESTPKI/SOURCES.md.
	if q.Certification.Type != CertPPIDCleartext || len(q.Certification.Data) != 34 {
		t.Fatalf("certification %d, %d bytes", q.Certification.Type, len(q.Certification.Data))
	}
	id, err := q.Certification.PCKIdentifier()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(id.PPID) != "8461863bb7ece31f64c8e9b77fd31cad" || hex.EncodeToString(id.CPUSVN[:]) != "00030000000101000000000000000000" || id.PCESVN != 3 || id.HasPCEID {
		t.Errorf("PCK identifier %+v", id)
	}
	if _, err := q.PCKChain(); !errors.Is(err, ErrNoPCKChain) {
		t.Errorf("type 1 carries no chain: %v", err)
	}
	if q.QEReport.ISVProdID != 1 || q.QEReport.ISVSVN != 1 || q.QEReport.MiscSelect != 0x8cb182d1 || len(q.QEAuthData) != 0 {
		t.Errorf("QE report %+v", q.QEReport)
	}

	for _, c := range []struct {
		typ  uint16
		size int
		ok   bool
	}{
		{1, 34, true}, {1, 36, true}, {1, 35, false}, {1, 37, false},
		{2, 274, true}, {2, 276, true}, {2, 275, false},
		{3, 402, true}, {3, 404, true}, {3, 36, false},
		{4, 0, true}, {5, 10, true}, {0, 0, false}, {7, 0, false},
	} {
		cd := &CertificationData{Type: c.typ, Data: make([]byte, c.size)}
		got, err := ParseCertificationData(cd.Marshal())
		if (err == nil) != c.ok {
			t.Errorf("type %d, %d bytes: %v", c.typ, c.size, err)
		}
		if err == nil && (got.Type != c.typ || len(got.Data) != c.size) {
			t.Errorf("type %d: parsed %d, %d bytes", c.typ, got.Type, len(got.Data))
		}
		if err == nil && c.typ <= 3 {
			id, err := got.PCKIdentifier()
			if err != nil || id.HasPCEID != (c.size%2 == 0 && c.size != 34 && c.size != 274 && c.size != 402) {
				t.Errorf("type %d, %d bytes: PCKIdentifier %+v, %v", c.typ, c.size, id, err)
			}
		}
	}
	// Type 6 wraps the QE data; parsed strictly.
	v4 := phalaV4(t)
	outer := v4[offAttKey+64:]
	cd, err := ParseCertificationData(outer)
	if err != nil || cd.Type != CertQEReport {
		t.Fatalf("type 6: %v", err)
	}
	if _, err := ParseCertificationData(append(bytes.Clone(outer), 0)); !errors.Is(err, ErrFormat) {
		t.Errorf("type 6 with a trailing byte: %v", err)
	}
	bad := bytes.Clone(outer)
	binary.LittleEndian.PutUint16(bad[6+384+64:], phalaAuth+1)
	if _, err := ParseCertificationData(bad); !errors.Is(err, ErrFormat) {
		t.Errorf("type 6 with a wrong nested auth size: %v", err)
	}
}

// phalaV4 rebuilds the real v3 quote in the version 4 layout (QE data
// nested in certification data type 6) by hand, independently of Marshal.
func phalaV4(t testing.TB) []byte {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	le := binary.LittleEndian
	inner := raw[offQEReport:]
	var b []byte
	b = append(b, raw[:offSigLen]...)
	b[0] = 4
	b = le.AppendUint32(b, uint32(128+6+len(inner)))
	b = append(b, raw[offSig:offQEReport]...)
	b = le.AppendUint16(b, CertQEReport)
	b = le.AppendUint32(b, uint32(len(inner)))
	return append(b, inner...)
}

// TestVersion4 parses the version 4 layout: every field comes back, it
// marshals back to the same bytes, and verification gets as far as the
// quote signature, which covers the changed version and so fails.
func TestVersion4(t *testing.T) {
	v3, err := ParseQuote(tdata(t, "phala-dcap-qvl/sgx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	raw := phalaV4(t)
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.Version != 4 || q.QEReport != v3.QEReport || q.QEReportSig != v3.QEReportSig || !bytes.Equal(q.QEAuthData, v3.QEAuthData) ||
		q.Certification.Type != CertPCKChain || !bytes.Equal(q.Certification.Data, v3.Certification.Data) {
		t.Fatal("v4 fields differ from the v3 original")
	}
	if again, err := q.Marshal(); err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("v4 Marshal does not round-trip: %v", err)
	}
	_, checks, err := q.VerifySignatures(intelRoot(t), nil, phalaTime)
	if !errors.Is(err, ErrQuoteSig) || len(checks) != 4 || checks[2].Status != Pass {
		t.Fatalf("v4: %v %+v", err, checks)
	}
	// Strict lengths inside the nested data.
	const outerSize = offAttKey + 64 + 2
	for _, d := range []int{-1, 1} {
		bad := bytes.Clone(raw)
		binary.LittleEndian.PutUint32(bad[outerSize:], uint32(len(raw)-outerSize-4+d))
		if _, err := ParseQuote(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("nested length off by %d: %v", d, err)
		}
	}
	bad := bytes.Clone(raw)
	binary.LittleEndian.PutUint16(bad[outerSize-2:], CertPCKChain)
	if _, err := ParseQuote(bad); !errors.Is(err, ErrFormat) {
		t.Errorf("v4 with certification type 5 at the top: %v", err)
	}
}

// TestBuildQuote builds a v3 quote from parts as the simulated quoting
// enclave does, checks it parses back to the same fields, and verifies it
// against its own root only.
func TestBuildQuote(t *testing.T) {
	f := newFixture(t)
	raw := f.quoteBytes()
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := q.Marshal(); !bytes.Equal(again, raw) || q.Body != f.quote.Body || q.QEReport != f.quote.QEReport {
		t.Fatal("built quote does not round-trip")
	}
	res, err := VerifyWithoutCollateral(raw, SignatureOptions{Root: f.root, Time: f.now})
	if err != nil {
		t.Fatalf("own root: %v %+v", err, res.Checks)
	}
	if res.Enclave.MRENCLAVE != f.quote.Body.MRENCLAVE || res.FMSPC != "00906ED50000" || len(res.Checks) != 5 {
		t.Errorf("result %+v", res)
	}
	if _, err := VerifyWithoutCollateral(raw, SignatureOptions{Root: intelRoot(t), Time: f.now}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("Intel root: %v", err)
	}
	if _, err := VerifyWithoutCollateral(raw, SignatureOptions{Time: f.now}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("no root: %v", err)
	}
	// A version 4 quote built from the same parts verifies too.
	f.quote.Header.Version = 4
	f.signQuote()
	v4 := f.quoteBytes()
	if _, err := VerifyWithoutCollateral(v4, SignatureOptions{Root: f.root, Time: f.now}); err != nil {
		t.Errorf("v4: %v", err)
	}
	// Marshal refuses what it cannot encode.
	f.quote.Header.Version = 5
	if _, err := f.quote.Marshal(); err == nil {
		t.Error("version 5 marshalled")
	}
	f.quote.Header.Version = 3
	f.quote.QEAuthData = make([]byte, 70000)
	if _, err := f.quote.Marshal(); err == nil {
		t.Error("70000 bytes of QE auth data marshalled")
	}
}

func FuzzParseQuote(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/sgx_quote"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/quote.dat"))
	f.Add(phalaV4(f))
	if td, err := os.ReadFile("../testdata/tdx/tdx_prod_quote_SPR_E4.dat"); err == nil {
		f.Add(td)
	}
	for _, name := range []string{"tdx_quote", "tdx_quote_outdated"} { // version 4 (padded) and 5
		if td, err := os.ReadFile("../testdata/tdx/dcap-qvl/" + name); err == nil {
			f.Add(td)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := QuoteLength(b); err == nil && (n < HeaderSize || n > len(b)) {
			t.Fatalf("QuoteLength %d of %d bytes", n, len(b))
		}
		// A TD quote goes through the same checks.
		if q, err := ParseTDQuote(b); err == nil {
			if again, err := q.Marshal(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("TD quote does not round-trip: %v", err)
			}
			q.VerifySignatures(intelRoot(t), nil, phalaTime)
		} else if !errors.Is(err, ErrFormat) {
			t.Fatalf("TD quote error does not wrap ErrFormat: %v", err)
		}
		q, err := ParseQuote(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		again, err := q.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("version %d quote does not round-trip: %v", q.Header.Version, err)
		}
		q.PCKChain()
		q.Certification.PCKIdentifier()
		q.AttestationKey()
		q.VerifySignatures(intelRoot(t), nil, phalaTime)
	})
}

func FuzzParseCertificationData(f *testing.F) {
	raw := tdata(f, "phala-dcap-qvl/sgx_quote")
	f.Add(raw[offCertType:])
	tpki := tdata(f, "intel-qvl-sampledata-TESTPKI/quote.dat")
	f.Add(tpki[len(tpki)-40:])
	f.Add(phalaV4(f)[offAttKey+64:])
	f.Fuzz(func(t *testing.T, b []byte) {
		cd, err := ParseCertificationData(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if !bytes.Equal(cd.Marshal(), b) {
			t.Fatal("certification data does not round-trip")
		}
		cd.PCKIdentifier()
		if certs, err := cd.Certificates(); err == nil {
			for _, c := range certs {
				ParsePCKExtensions(c)
			}
		}
	})
}

func FuzzParseCertChain(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/derived/pck_chain_from_quote.pem"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertChain(b)
		if err != nil {
			return
		}
		for _, c := range certs {
			ParsePCKExtensions(c)
		}
		verifyChain(certs, intelRoot(t), phalaTime, rolePCK)
	})
}

func FuzzParsePCKExtensions(f *testing.F) {
	chain, _ := ParseCertChain(tdata(f, "phala-dcap-qvl/derived/pck_chain_from_quote.pem"))
	for _, e := range chain[0].Extensions {
		if e.Id.Equal(OIDSGXExtensions) {
			f.Add(e.Value)
		}
	}
	x := PCKExtensions{PPID: make([]byte, 16), PlatformInstanceID: make([]byte, 16), Configuration: &PCKConfiguration{CachedKeys: true}}
	if v, err := x.Marshal(); err == nil {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := parsePCKExtensionValue(b)
		if err != nil {
			return
		}
		v, err := x.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		y, err := parsePCKExtensionValue(v)
		if err != nil {
			t.Fatalf("re-encoded extension does not parse: %v", err)
		}
		if y.PCESVN != x.PCESVN || y.Components != x.Components || y.FMSPC != x.FMSPC || y.PCEID != x.PCEID || y.SGXType != x.SGXType {
			t.Fatal("extension does not round-trip")
		}
	})
}
