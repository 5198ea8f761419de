package dcap

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"
)

func TestVerifySignaturesPhala(t *testing.T) {
	q, err := ParseQuote(tdata(t, "phala-dcap-qvl/sgx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, checks, err := q.VerifySignatures(intelRoot(t), nil, phalaTime)
	if err != nil {
		t.Fatalf("VerifySignatures: %v (%+v)", err, checks)
	}
	if len(checks) != 4 || leaf.Subject.CommonName != "Intel SGX PCK Certificate" {
		t.Errorf("checks %+v leaf %q", checks, leaf.Subject.CommonName)
	}
	for _, c := range checks {
		if c.Status != Pass {
			t.Errorf("check %+v", c)
		}
	}
	// The root is pinned by key: the other encoding of it, and the
	// embedded default, pin equally.
	for _, root := range []*x509.Certificate{cert(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2033_variant.der"), IntelRootCA()} {
		if _, _, err := q.VerifySignatures(root, nil, phalaTime); err != nil {
			t.Errorf("root %v: %v", root.NotAfter, err)
		}
	}
	// Another key does not, even with the same name.
	if _, _, err := q.VerifySignatures(cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem"), nil, phalaTime); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("TEST root: %v", err)
	}
	if _, _, err := q.VerifySignatures(nil, nil, phalaTime); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("nil root: %v", err)
	}
	// Outside the certificates' validity.
	for _, at := range []time.Time{time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, _, err := q.VerifySignatures(intelRoot(t), nil, at); !errors.Is(err, ErrChain) {
			t.Errorf("at %v: %v", at, err)
		}
	}
	// Certificates are ordered by issuer, not position.
	chain, _ := q.PCKChain()
	for _, order := range [][]int{{2, 1, 0}, {1, 0, 2}, {0, 1}, {1, 0}} {
		var c []*x509.Certificate
		for _, i := range order {
			c = append(c, chain[i])
		}
		if _, _, err := q.VerifySignatures(intelRoot(t), c, phalaTime); err != nil {
			t.Errorf("order %v: %v", order, err)
		}
	}
	// A certificate that is not on the chain is refused.
	extra := append(tdata(t, "phala-dcap-qvl/derived/pck_chain_from_quote.pem"), tdata(t, "phala-dcap-qvl/derived/tcb_signing_cert.pem")...)
	c, err := ParseCertChain(extra)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.VerifySignatures(intelRoot(t), c, phalaTime); !errors.Is(err, ErrChain) {
		t.Errorf("extra certificate: %v", err)
	}
}

func TestVerifyWithoutCollateralPhala(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	res, err := VerifyWithoutCollateral(raw, SignatureOptions{Root: IntelRootCA(), Time: phalaTime})
	if err != nil {
		t.Fatalf("%v %+v", err, res.Checks)
	}
	if res.TCBStatus != "" || res.FMSPC != "00A067110000" || res.Enclave.MRENCLAVE.String()[:8] != "33d8736d" {
		t.Errorf("result %+v", res)
	}
	// The Intel TEST-PKI sample needs its chain supplied (type 1).
	tq := tdata(t, "intel-qvl-sampledata-TESTPKI/quote.dat")
	chain := testPKIChain(t)
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := VerifyWithoutCollateral(tq, SignatureOptions{Root: cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem"), Time: at, PCKChain: chain}); err != nil {
		t.Errorf("TEST-PKI, its root: %v", err)
	}
	if _, err := VerifyWithoutCollateral(tq, SignatureOptions{Root: IntelRootCA(), Time: at, PCKChain: chain}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("TEST-PKI, real root: %v", err)
	}
	res, err = VerifyWithoutCollateral(tq, SignatureOptions{Root: IntelRootCA(), Time: at})
	if !errors.Is(err, ErrNoPCKChain) || res.Checks[1].Name != CheckPCKChain || res.Checks[1].Status != Fail || res.Checks[4].Status != Skip {
		t.Errorf("TEST-PKI, no chain: %v %+v", err, res.Checks)
	}
}

func testPKIChain(t testing.TB) []*x509.Certificate {
	chain, err := ParseCertChain(append(tdata(t, "intel-qvl-sampledata-TESTPKI/pckCert.pem"), tdata(t, "intel-qvl-sampledata-TESTPKI/pckSignChain.pem")...))
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// TestRoleSeparation checks that a key certified for one role cannot act
// in another: a PCK key (say, leaked from one platform) cannot sign TCB
// Info, the TCB signing key cannot act as a PCK, and a PCK chain must have
// its CA between the PCK and the root.
func TestRoleSeparation(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verify(SWHardeningNeeded); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	// TCB Info "signed" by the PCK key under the PCK chain.
	g := newFixture(t)
	g.col.TCBInfo = []byte(g.dates(defaultTCBInfo))
	sig := signRaw(t, g.pckKey, g.col.TCBInfo)
	g.col.TCBInfoSignature = sig[:]
	g.col.TCBInfoIssuerChain = []*x509.Certificate{g.pck, g.ca, g.root}
	if res, err := g.verify(SWHardeningNeeded); !errors.Is(err, ErrTCBInfo) || !errors.Is(err, ErrChain) || failed(res) != CheckTCBInfoSignature {
		t.Errorf("TCB Info signed by a PCK key: %v", err)
	}
	// The TCB signing key acting as a PCK key (chain of two).
	h := newFixture(t)
	h.pckKey = h.tcbKey
	h.quote.Certification.Data = pemChain(h.tcbSigner, h.root)
	h.signQuote()
	if res, err := h.verify(SWHardeningNeeded); !errors.Is(err, ErrChain) || failed(res) != CheckPCKChain {
		t.Errorf("TCB signing key as PCK: %v", err)
	}
	// A "PCK" certificate issued by the root directly.
	k := newFixture(t)
	k.pck = issue(t, pckTemplate(t, "Test SGX PCK Certificate", &k.pckExt), k.root, &k.pckKey.PublicKey, k.rootKey)
	k.quote.Certification.Data = pemChain(k.pck, k.root)
	if res, err := k.verify(SWHardeningNeeded); !errors.Is(err, ErrChain) || failed(res) != CheckPCKChain {
		t.Errorf("PCK issued by the root: %v", err)
	}
	// A PCK certificate without the SGX extension, or misnamed.
	for _, tmpl := range []*x509.Certificate{
		{Subject: pkix.Name{CommonName: "Test SGX PCK Certificate"}},
		pckTemplate(t, "Test SGX TCB Signing", &k.pckExt),
	} {
		m := newFixture(t)
		m.pck = issue(t, tmpl, m.ca, &m.pckKey.PublicKey, m.caKey)
		m.quote.Certification.Data = pemChain(m.pck, m.ca, m.root)
		if res, err := m.verify(SWHardeningNeeded); !errors.Is(err, ErrChain) || failed(res) != CheckPCKChain {
			t.Errorf("PCK %q: %v", tmpl.Subject.CommonName, err)
		}
	}
	// A TCB signing certificate that is a CA.
	n := newFixture(t)
	tmpl := caTemplate("Test SGX TCB Signing")
	n.tcbSigner = issue(t, tmpl, n.root, &n.tcbKey.PublicKey, n.rootKey)
	n.col.TCBInfoIssuerChain = []*x509.Certificate{n.tcbSigner, n.root}
	if res, err := n.verify(SWHardeningNeeded); !errors.Is(err, ErrTCBInfo) || failed(res) != CheckTCBInfoSignature {
		t.Errorf("TCB signer that is a CA: %v", err)
	}
}

// failed returns the name of the failed check, checking that every check
// after it is skipped and every one before passed or was skipped.
func failed(res *Result) string {
	name := ""
	for _, c := range res.Checks {
		switch {
		case name != "" && c.Status != Skip:
			return "check after the failure not skipped: " + c.Name
		case c.Status == Fail:
			name = c.Name
		}
	}
	return name
}

// TestFlipQuoteBytes flips every byte of every signed region of the real
// quote and verifies with the real collateral: each flip must fail, at the
// check that covers the region, with that check's error.
func TestFlipQuoteBytes(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	col := phalaCollateral(t)
	opts := Options{Time: phalaTime, Accept: []TCBStatus{ConfigurationAndSWHardeningNeeded}}
	if _, err := Verify(raw, col, opts); err != nil {
		t.Fatal(err)
	}
	regions := []struct {
		name       string
		from, to   int
		check      string
		want       error
		parseError bool
	}{
		{"header version, key type, TEE type", 0, 8, CheckParse, ErrFormat, true},
		{"header QE SVN .. user data", 8, HeaderSize, CheckQuoteSignature, ErrQuoteSig, false},
		{"report body", offBody, offSigLen, CheckQuoteSignature, ErrQuoteSig, false},
		{"signature data length", offSigLen, offSig, CheckParse, ErrFormat, true},
		{"quote signature", offSig, offAttKey, CheckQuoteSignature, ErrQuoteSig, false},
		{"attestation key", offAttKey, offQEReport, CheckQEReportData, ErrQEBinding, false},
		{"QE report", offQEReport, offQESig, CheckQEReportSignature, ErrQEReportSig, false},
		{"QE report signature", offQESig, offAuthLen, CheckQEReportSignature, ErrQEReportSig, false},
		{"QE auth data size", offAuthLen, offAuth, CheckParse, ErrFormat, true},
		{"QE auth data", offAuth, offCertType, CheckQEReportData, ErrQEBinding, false},
		{"certification data size", offCertType + 2, offCertType + 6, CheckParse, ErrFormat, true},
	}
	n := 0
	for _, r := range regions {
		for off := r.from; off < r.to; off++ {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(raw)
				b[off] ^= bit
				res, err := Verify(b, col, opts)
				n++
				if !errors.Is(err, r.want) || failed(res) != r.check {
					t.Fatalf("%s: flip %#x at offset %d: %v (failed %q), want %v at %s", r.name, bit, off, err, failed(res), r.want, r.check)
				}
			}
		}
	}
	// Certification data type 5 made 4 (PCK certificate alone), or 7.
	for _, c := range []struct {
		typ   byte
		check string
		want  error
	}{{4, CheckPCKChain, ErrChain}, {7, CheckParse, ErrFormat}, {1, CheckParse, ErrFormat}} {
		b := bytes.Clone(raw)
		b[offCertType] = c.typ
		if res, err := Verify(b, col, opts); !errors.Is(err, c.want) || failed(res) != c.check {
			t.Errorf("certification data type %d: %v", c.typ, err)
		}
	}
	// A byte of the PCK certificate's signed part (its serial number).
	chainAt := offCertType + 6
	b := bytes.Clone(raw)
	b[chainAt+100] ^= 0x01
	if res, err := Verify(b, col, opts); !errors.Is(err, ErrChain) || failed(res) != CheckPCKChain {
		t.Errorf("PCK certificate byte: %v", err)
	}
	t.Logf("%d flipped quotes refused at the right check", n)
}

// TestFlipCollateralBytes flips bytes of the signed TCB Info and QE
// Identity JSON (every 7th byte, both ends included) and every byte of
// both CRLs: each must be refused at its own check.
func TestFlipCollateralBytes(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	opts := Options{Time: phalaTime, Accept: []TCBStatus{ConfigurationAndSWHardeningNeeded}}
	base := phalaCollateral(t)
	for _, c := range []struct {
		name  string
		get   func(*Collateral) *[]byte
		check string
		want  error
	}{
		{"TCB Info JSON", func(c *Collateral) *[]byte { return &c.TCBInfo }, CheckTCBInfoSignature, ErrTCBInfo},
		{"TCB Info signature", func(c *Collateral) *[]byte { return &c.TCBInfoSignature }, CheckTCBInfoSignature, ErrTCBInfo},
		{"QE Identity JSON", func(c *Collateral) *[]byte { return &c.QEIdentity }, CheckQEIdentitySignature, ErrQEIdentity},
		{"QE Identity signature", func(c *Collateral) *[]byte { return &c.QEIdentitySignature }, CheckQEIdentitySignature, ErrQEIdentity},
	} {
		n := len(*c.get(base))
		for off := 0; off < n; off += 7 {
			if off+7 >= n {
				off = n - 1
			}
			col := *base
			b := bytes.Clone(*c.get(base))
			b[off] ^= 0x01
			*c.get(&col) = b
			res, err := Verify(raw, &col, opts)
			if !errors.Is(err, c.want) || failed(res) != c.check {
				t.Fatalf("%s: flip at %d: %v (failed %q)", c.name, off, err, failed(res))
			}
		}
	}
	for _, c := range []struct {
		name  string
		file  string
		set   func(*Collateral, *x509.RevocationList)
		check string
	}{
		{"root CA CRL", "phala-dcap-qvl/derived/root_ca_crl.der", func(c *Collateral, l *x509.RevocationList) { c.RootCACRL = l }, CheckRootCACRL},
		{"PCK CRL", "phala-dcap-qvl/derived/pck_crl.der", func(c *Collateral, l *x509.RevocationList) { c.PCKCRL = l }, CheckPCKCRL},
	} {
		der := tdata(t, c.file)
		refusedParse := 0
		for off := range der {
			b := bytes.Clone(der)
			b[off] ^= 0x01
			l, err := ParseCRL(b)
			if err != nil {
				refusedParse++
				continue
			}
			col := *base
			c.set(&col, l)
			res, err := Verify(raw, &col, opts)
			if !errors.Is(err, ErrCRL) || failed(res) != c.check {
				t.Fatalf("%s: flip at %d: %v (failed %q)", c.name, off, err, failed(res))
			}
		}
		t.Logf("%s: %d of %d flips refused by the parser, the others by %s", c.name, refusedParse, len(der), c.check)
	}
}

func TestVerifierCache(t *testing.T) {
	raw := tdata(t, "phala-dcap-qvl/sgx_quote")
	v := &Verifier{Root: intelRoot(t)}
	for i := range 2 {
		q, _ := ParseQuote(raw)
		if _, checks, err := v.VerifySignatures(q, phalaTime); err != nil || len(checks) != 4 {
			t.Fatalf("round %d: %v %+v", i, err, checks)
		}
	}
	for _, c := range []struct {
		off  int
		want error
	}{{offBody + 70, ErrQuoteSig}, {offSig + 3, ErrQuoteSig}, {offQEReport + 70, ErrQEReportSig}, {offAuth + 3, ErrQEBinding}, {offAttKey + 1, ErrQEBinding}} {
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
	// Another root does not share the cache.
	other := &Verifier{Root: cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem")}
	if _, _, err := other.VerifySignatures(q, phalaTime); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("other root: %v", err)
	}
	// No root: an error, not a panic.
	if _, _, err := new(Verifier).VerifySignatures(q, phalaTime); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("zero Verifier: %v", err)
	}
}
