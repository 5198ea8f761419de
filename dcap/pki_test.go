package dcap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx"
)

// fixture is a complete, self-made DCAP world: a root, a PCK Platform CA,
// a PCK certificate, a TCB signing certificate, an attestation key, a
// quote, CRLs, TCB Info and QE Identity. It lets tests make the cases that
// Intel's keys cannot be made to sign: revocations, expired CRLs, role
// confusion, QE mismatches, TCB status combinations.
type fixture struct {
	t                        testing.TB
	now                      time.Time
	rootKey, caKey, pckKey   *ecdsa.PrivateKey
	tcbKey, attKey           *ecdsa.PrivateKey
	root, ca, pck, tcbSigner *x509.Certificate
	pckExt                   PCKExtensions
	quote                    *Quote
	col                      *Collateral
}

var fixtureTime = time.Date(2030, 1, 15, 0, 0, 0, 0, time.UTC)

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serialCounter = big.NewInt(1000) // test-only; tests do not run in parallel

func issue(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	serialCounter.Add(serialCounter, big.NewInt(1))
	tmpl.SerialNumber = new(big.Int).Set(serialCounter)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = fixtureTime.AddDate(-1, 0, 0)
		tmpl.NotAfter = fixtureTime.AddDate(5, 0, 0)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{"dcap test"}},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
}

func pckTemplate(t testing.TB, cn string, ext *PCKExtensions) *x509.Certificate {
	v, err := ext.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: OIDSGXExtensions, Value: v}}}
}

func pemChain(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func signRaw(t testing.TB, k *ecdsa.PrivateKey, msg []byte) [64]byte {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	var out [64]byte
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func rawKey(k *ecdsa.PrivateKey) [64]byte {
	b, _ := k.PublicKey.Bytes()
	return [64]byte(b[1:])
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{t: t, now: fixtureTime}
	f.rootKey, f.caKey, f.pckKey, f.tcbKey, f.attKey = mustKey(t), mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	f.root = issue(t, caTemplate("Test SGX Root CA"), nil, &f.rootKey.PublicKey, f.rootKey)
	f.ca = issue(t, caTemplate("Test SGX PCK Platform CA"), f.root, &f.caKey.PublicKey, f.rootKey)
	f.pckExt = PCKExtensions{PPID: make([]byte, 16), PCESVN: 13, PCEID: [2]byte{0, 0}, FMSPC: [6]byte{0x00, 0x90, 0x6e, 0xd5, 0, 0}}
	for i := range f.pckExt.Components {
		f.pckExt.Components[i] = 4
	}
	f.pck = issue(t, pckTemplate(t, "Test SGX PCK Certificate", &f.pckExt), f.ca, &f.pckKey.PublicKey, f.caKey)
	f.tcbSigner = issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Test SGX TCB Signing"}, KeyUsage: x509.KeyUsageDigitalSignature}, f.root, &f.tcbKey.PublicKey, f.rootKey)

	q := &Quote{Header: Header{Version: 3, AttKeyType: AttKeyECDSAP256, QESVN: 8, PCESVN: 13, QEVendorID: IntelQEVendorID}}
	q.Body.MRENCLAVE = sgx.Measurement(sha256.Sum256([]byte("enclave")))
	q.Body.MRSIGNER = sgx.Measurement(sha256.Sum256([]byte("signer")))
	q.Body.Attributes = sgx.Attributes{Flags: 0x05, Xfrm: 0xe7}
	copy(q.Body.ReportData[:], "hello")
	q.QEReport.MRSIGNER = sgx.Measurement(sha256.Sum256([]byte("qe signer")))
	q.QEReport.ISVProdID, q.QEReport.ISVSVN = 1, 8
	q.QEReport.Attributes = sgx.Attributes{Flags: 0x11, Xfrm: 0xe7}
	q.QEAuthData = []byte("0123456789abcdef0123456789abcdef")
	q.Certification = CertificationData{Type: CertPCKChain, Data: pemChain(f.pck, f.ca, f.root)}
	f.quote = q
	f.signQuote()

	f.col = &Collateral{
		TCBInfoIssuerChain:    []*x509.Certificate{f.tcbSigner, f.root},
		QEIdentityIssuerChain: []*x509.Certificate{f.tcbSigner, f.root},
		PCKCRLIssuerChain:     []*x509.Certificate{f.ca, f.root},
	}
	f.col.RootCACRL = f.crl(f.root, f.rootKey, nil, f.now.AddDate(0, 0, -1), f.now.AddDate(0, 1, 0))
	f.col.PCKCRL = f.crl(f.ca, f.caKey, nil, f.now.AddDate(0, 0, -1), f.now.AddDate(0, 1, 0))
	f.setTCBInfo(defaultTCBInfo)
	f.setQEIdentity(f.defaultQEIdentity())
	return f
}

// signQuote recomputes the QE binding and both signatures after the quote
// fields changed.
func (f *fixture) signQuote() {
	q := f.quote
	q.AttestKey = rawKey(f.attKey)
	q.QEReport.ReportData = QEReportData(q.AttestKey, q.QEAuthData)
	q.QEReportSig = signRaw(f.t, f.pckKey, q.QEReport.Marshal())
	q.Signature = signRaw(f.t, f.attKey, q.SignedBytes())
}

func (f *fixture) quoteBytes() []byte {
	b, err := f.quote.Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked []*x509.Certificate, this, next time.Time) *x509.RevocationList {
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: this, NextUpdate: next}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, key)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// defaultTCBInfo has three levels; the fixture's PCK (components 4,
// PCESVN 13) is at the second, SWHardeningNeeded.
const defaultTCBInfo = `{"id":"SGX","version":3,"issueDate":"ISSUE","nextUpdate":"NEXT","fmspc":"00906ED50000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tcbLevels":[` +
	`{"tcb":{"sgxtcbcomponents":[SVN5],"pcesvn":13},"tcbDate":"2029-01-01T00:00:00Z","tcbStatus":"UpToDate"},` +
	`{"tcb":{"sgxtcbcomponents":[SVN3],"pcesvn":11},"tcbDate":"2028-01-01T00:00:00Z","tcbStatus":"SWHardeningNeeded","advisoryIDs":["INTEL-SA-00001"]},` +
	`{"tcb":{"sgxtcbcomponents":[SVN0],"pcesvn":0},"tcbDate":"2020-01-01T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-00002"]}]}`

func svns(v int) string {
	s := make([]string, 16)
	for i := range s {
		s[i] = fmt.Sprintf(`{"svn":%d}`, v)
	}
	return strings.Join(s, ",")
}

func (f *fixture) dates(s string) string {
	return strings.NewReplacer("ISSUE", f.now.AddDate(0, 0, -1).Format(time.RFC3339), "NEXT", f.now.AddDate(0, 1, 0).Format(time.RFC3339),
		"SVN5", svns(5), "SVN3", svns(3), "SVN0", svns(0)).Replace(s)
}

// setTCBInfo installs a TCB Info (placeholders ISSUE, NEXT, SVNn
// replaced) signed by the TCB signing key.
func (f *fixture) setTCBInfo(s string) {
	f.col.TCBInfo = []byte(f.dates(s))
	sig := signRaw(f.t, f.tcbKey, f.col.TCBInfo)
	f.col.TCBInfoSignature = sig[:]
}

func (f *fixture) defaultQEIdentity() string {
	return fmt.Sprintf(`{"id":"QE","version":2,"issueDate":"ISSUE","nextUpdate":"NEXT","tcbEvaluationDataNumber":17,`+
		`"miscselect":"00000000","miscselectMask":"FFFFFFFF","attributes":"11000000000000000000000000000000","attributesMask":"FBFFFFFFFFFFFFFF0000000000000000",`+
		`"mrsigner":"%X","isvprodid":1,"tcbLevels":[`+
		`{"tcb":{"isvsvn":8},"tcbDate":"2029-01-01T00:00:00Z","tcbStatus":"UpToDate"},`+
		`{"tcb":{"isvsvn":6},"tcbDate":"2028-01-01T00:00:00Z","tcbStatus":"OutOfDate","advisoryIDs":["INTEL-SA-00003"]}]}`, f.quote.QEReport.MRSIGNER[:])
}

func (f *fixture) setQEIdentity(s string) {
	f.col.QEIdentity = []byte(f.dates(s))
	sig := signRaw(f.t, f.tcbKey, f.col.QEIdentity)
	f.col.QEIdentitySignature = sig[:]
}

func (f *fixture) verify(accept ...TCBStatus) (*Result, error) {
	return Verify(f.quoteBytes(), f.col, Options{Root: f.root, Time: f.now, Accept: accept})
}
