package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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

var phalaTime = time.Date(2025, 6, 25, 0, 0, 0, 0, time.UTC)

func TestParsePhalaQuote(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.Version != 3 || q.Header.QESVN != 10 || q.Header.PCESVN != 15 || q.Header.QEVendorID != IntelQEVendorID {
		t.Errorf("header %+v", q.Header)
	}
	if q.Body.MRENCLAVE.String() != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" ||
		q.Body.MRSIGNER.String() != "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6" {
		t.Errorf("body %s %s", q.Body.MRENCLAVE, q.Body.MRSIGNER)
	}
	if !bytes.HasPrefix(q.Body.ReportData[:], []byte("Hello, world!")) || q.QEReport.ISVSVN != 10 || q.Certification.Type != CertPCKChain {
		t.Error("report data, QE report or certification type")
	}
	again, err := q.Marshal()
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("Marshal does not round-trip: %v", err)
	}
	root := cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")
	leaf, checks, err := q.VerifySignatures(root, nil, phalaTime)
	if err != nil {
		t.Fatalf("VerifySignatures: %v (%+v)", err, checks)
	}
	if len(checks) != 4 || leaf.Subject.CommonName != "Intel SGX PCK Certificate" {
		t.Errorf("checks %+v leaf %q", checks, leaf.Subject.CommonName)
	}
	// The other encoding of the same root key pins equally.
	if _, _, err := q.VerifySignatures(cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2033_variant.der"), nil, phalaTime); err != nil {
		t.Errorf("root pinned by key, other certificate: %v", err)
	}
	// A test root does not.
	if _, _, err := q.VerifySignatures(cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem"), nil, phalaTime); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("wrong root: %v", err)
	}
	// Expired.
	if _, _, err := q.VerifySignatures(root, nil, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrChain) {
		t.Errorf("expired chain: %v", err)
	}
}

// TestFlipSignedBytes flips one byte in each signed region of the quote;
// each must fail the check that covers it.
func TestFlipSignedBytes(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	root := cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")
	const sig = HeaderSize + 384 + 4
	cases := []struct {
		name string
		off  int
		want error
	}{
		{"header", 10, ErrQuoteSig},
		{"report body mrenclave", HeaderSize + 64, ErrQuoteSig},
		{"report data", HeaderSize + 320, ErrQuoteSig},
		{"quote signature", sig + 3, ErrQuoteSig},
		{"attestation key", sig + 64 + 5, ErrQEBinding},
		{"QE report", sig + 128 + 70, ErrQEReportSig},
		{"QE report signature", sig + 512 + 1, ErrQEReportSig},
		{"QE auth data", sig + 576 + 2 + 1, ErrQEBinding},
	}
	for _, c := range cases {
		b := bytes.Clone(raw)
		b[c.off] ^= 0x01
		q, err := ParseQuote(b)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if _, _, err := q.VerifySignatures(root, nil, phalaTime); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTestPKIQuote(t *testing.T) {
	q, err := ParseQuote(tdata(t, "intel-qvl-sampledata-TESTPKI/quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if q.Certification.Type != CertPPIDCleartext || len(q.Certification.Data) != 34 {
		t.Fatalf("certification %d, %d bytes", q.Certification.Type, len(q.Certification.Data))
	}
	if _, _, err := q.VerifySignatures(nil, nil, time.Now()); !errors.Is(err, ErrNoPCKChain) {
		t.Errorf("type 1 without a supplied chain: %v", err)
	}
	chain, err := ParseCertChain(append(tdata(t, "intel-qvl-sampledata-TESTPKI/pckCert.pem"), tdata(t, "intel-qvl-sampledata-TESTPKI/pckSignChain.pem")...))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, err := q.VerifySignatures(cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem"), chain, at); err != nil {
		t.Errorf("against the test root: %v", err)
	}
	if _, _, err := q.VerifySignatures(cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der"), chain, at); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("against the real root: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	for _, n := range []int{0, 10, 47, 48, 431, 432, 435, 500, len(raw) - 1} {
		if _, err := ParseQuote(raw[:n]); !errors.Is(err, ErrFormat) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	if _, err := ParseQuote(append(bytes.Clone(raw), 0)); !errors.Is(err, ErrFormat) {
		t.Error("trailing byte accepted")
	}
	b := bytes.Clone(raw)
	b[0] = 5
	if _, err := ParseQuote(b); !errors.Is(err, ErrFormat) {
		t.Error("version 5 accepted")
	}
}

func FuzzParseQuote(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/sgx_quote"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/quote.dat"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			return
		}
		if q.Header.Version == 3 {
			again, err := q.Marshal()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatal("v3 quote does not round-trip")
			}
		}
		q.PCKChain()
		q.AttestationKey()
	})
}

func TestVerifierCache(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	v := &Verifier{Root: cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")}
	for i := range 2 {
		q, _ := ParseQuote(raw)
		if _, checks, err := v.VerifySignatures(q, phalaTime); err != nil || len(checks) != 4 {
			t.Fatalf("round %d: %v %+v", i, err, checks)
		}
	}
	const sig = HeaderSize + 384 + 4
	for _, c := range []struct {
		off  int
		want error
	}{{HeaderSize + 70, ErrQuoteSig}, {sig + 128 + 70, ErrQEReportSig}, {sig + 576 + 3, ErrQEBinding}} {
		b := bytes.Clone(raw)
		b[c.off] ^= 1
		q, _ := ParseQuote(b)
		if _, _, err := v.VerifySignatures(q, phalaTime); !errors.Is(err, c.want) {
			t.Errorf("flip at %d after caching: %v, want %v", c.off, err, c.want)
		}
	}
	// The cached chain is not used outside its validity.
	q, _ := ParseQuote(raw)
	if _, _, err := v.VerifySignatures(q, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrChain) {
		t.Errorf("expired, cached: %v", err)
	}
}

// TestVersion4 rebuilds the real v3 quote in the version 4 layout (QE data
// nested in certification data type 6) and parses it: every field comes
// back, and verification gets as far as the quote signature, which covers
// the header and so no longer matches.
func TestVersion4(t *testing.T) {
	v3, err := ParseQuote(tdata(t, "phala-dcap-qvl/sgx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var inner []byte
	inner = append(inner, v3.QEReport.Marshal()...)
	inner = append(inner, v3.QEReportSig[:]...)
	inner = le.AppendUint16(inner, uint16(len(v3.QEAuthData)))
	inner = append(inner, v3.QEAuthData...)
	inner = le.AppendUint16(inner, v3.Certification.Type)
	inner = le.AppendUint32(inner, uint32(len(v3.Certification.Data)))
	inner = append(inner, v3.Certification.Data...)
	var sig []byte
	sig = append(sig, v3.Signature[:]...)
	sig = append(sig, v3.AttestKey[:]...)
	sig = le.AppendUint16(sig, CertQEReport)
	sig = le.AppendUint32(sig, uint32(len(inner)))
	sig = append(sig, inner...)
	h := v3.Header
	h.Version = 4
	raw := append(h.marshal(), v3.Body.Marshal()...)
	raw = le.AppendUint32(raw, uint32(len(sig)))
	raw = append(raw, sig...)
	q, err := ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if q.Header.Version != 4 || q.QEReport != v3.QEReport || !bytes.Equal(q.QEAuthData, v3.QEAuthData) || q.Certification.Type != CertPCKChain {
		t.Fatal("v4 fields differ from the v3 original")
	}
	_, checks, err := q.VerifySignatures(cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der"), nil, phalaTime)
	if !errors.Is(err, ErrQuoteSig) || len(checks) != 4 || !checks[2].OK {
		t.Fatalf("v4: %v %+v", err, checks)
	}
	// Strict lengths inside the nested data.
	bad := bytes.Clone(raw)
	le.PutUint32(bad[HeaderSize+384+4+128+2:], uint32(len(inner)+1))
	if _, err := ParseQuote(bad); !errors.Is(err, ErrFormat) {
		t.Errorf("nested length off by one: %v", err)
	}
}
