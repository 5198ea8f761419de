package dcap

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func phalaCollateral(t testing.TB) *Collateral {
	c, err := ParseCollateralBundle(tdata(t, "phala-dcap-qvl/sgx_quote_collateral.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyPhala(t *testing.T) {
	col := phalaCollateral(t)
	quote := tdata(t, "phala-dcap-qvl/sgx_quote")
	at := time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)
	// Default policy: UpToDate only, so the status is refused.
	res, err := Verify(quote, col, Options{Time: at})
	if !errors.Is(err, ErrStatusRefused) || res.TCBStatus != ConfigurationAndSWHardeningNeeded {
		t.Fatalf("default policy: %v, status %q", err, res.TCBStatus)
	}
	res, err = Verify(quote, col, Options{Time: at, Accept: []string{ConfigurationAndSWHardeningNeeded}})
	if err != nil {
		t.Fatalf("Verify: %v\n%+v", err, res.Checks)
	}
	if !slices.Equal(res.AdvisoryIDs, []string{"INTEL-SA-00289", "INTEL-SA-00615"}) || res.QETCB != UpToDate || res.FMSPC != "00A067110000" {
		t.Errorf("result %+v", res)
	}
	for _, when := range []time.Time{time.Date(2025, 6, 19, 10, 56, 11, 0, time.UTC), time.Date(2025, 7, 19, 10, 1, 18, 0, time.UTC)} { // the QE Identity expires first
		if _, err := Verify(quote, col, Options{Time: when, Accept: []string{ConfigurationAndSWHardeningNeeded}}); err != nil {
			t.Errorf("at %v (window edge): %v", when, err)
		}
	}
	// Outside the collateral window.
	if _, err := Verify(quote, col, Options{Time: at.AddDate(0, 2, 0), Accept: []string{ConfigurationAndSWHardeningNeeded}}); err == nil {
		t.Error("verified after the collateral expired")
	}
	// The same collateral from separate files.
	tcb, sig, err := ParseSignedJSON(tdata(t, "phala-dcap-qvl/derived/tcb_info.json"))
	if err != nil || sig != nil || !bytes.Equal(tcb, col.TCBInfo) {
		t.Fatalf("tcb_info.json: %v", err)
	}
	crl, err := ParseCRL(tdata(t, "phala-dcap-qvl/derived/pck_crl.der"))
	if err != nil || crl.Number.Cmp(col.PCKCRL.Number) != 0 {
		t.Fatalf("pck_crl.der: %v", err)
	}
}

// TestVerifyTampered flips bytes of the signed collateral: each must fail
// its own check.
func TestVerifyTampered(t *testing.T) {
	quote := tdata(t, "phala-dcap-qvl/sgx_quote")
	at := time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)
	opts := Options{Time: at, Accept: []string{ConfigurationAndSWHardeningNeeded}}
	cases := []struct {
		name string
		mod  func(c *Collateral)
		want error
	}{
		{"TCB Info JSON", func(c *Collateral) {
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"pcesvn":13`), []byte(`"pcesvn":12`), 1)
		}, ErrTCBInfo},
		{"TCB Info signature", func(c *Collateral) { c.TCBInfoSignature[5] ^= 1 }, ErrTCBInfo},
		{"QE Identity JSON", func(c *Collateral) {
			c.QEIdentity = bytes.Replace(c.QEIdentity, []byte(`"isvsvn":8`), []byte(`"isvsvn":9`), 1)
		}, ErrQEIdentity},
		{"QE Identity signature", func(c *Collateral) { c.QEIdentitySignature[40] ^= 1 }, ErrQEIdentity},
		{"PCK CRL missing", func(c *Collateral) { c.PCKCRL = nil }, ErrCRL},
		{"root CRL signed by another", func(c *Collateral) { c.RootCACRL = c.PCKCRL }, ErrCRL},
	}
	for _, tc := range cases {
		c := phalaCollateral(t)
		tc.mod(c)
		if _, err := Verify(quote, c, opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestVerifyTestPKI(t *testing.T) {
	quote := tdata(t, "intel-qvl-sampledata-TESTPKI/quote.dat")
	chain, err := ParseCertChain(append(tdata(t, "intel-qvl-sampledata-TESTPKI/pckCert.pem"), tdata(t, "intel-qvl-sampledata-TESTPKI/pckSignChain.pem")...))
	if err != nil {
		t.Fatal(err)
	}
	tcb, tsig, err := ParseSignedJSON(tdata(t, "intel-qvl-sampledata-TESTPKI/tcbInfo.json"))
	if err != nil {
		t.Fatal(err)
	}
	qe, qsig, err := ParseSignedJSON(tdata(t, "intel-qvl-sampledata-TESTPKI/qeIdentity.json"))
	if err != nil {
		t.Fatal(err)
	}
	signChain, _ := ParseCertChain(tdata(t, "intel-qvl-sampledata-TESTPKI/tcbSignChain.pem"))
	rootCRL, err := ParseCRL(tdata(t, "intel-qvl-sampledata-TESTPKI/rootCaCrl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pckCRL, err := ParseCRL(tdata(t, "intel-qvl-sampledata-TESTPKI/intermediateCaCrl.der"))
	if err != nil {
		t.Fatal(err)
	}
	col := &Collateral{TCBInfo: tcb, TCBInfoSignature: tsig, TCBInfoIssuerChain: signChain, QEIdentity: qe, QEIdentitySignature: qsig,
		QEIdentityIssuerChain: signChain, PCKCRL: pckCRL, RootCACRL: rootCRL}
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	all := []string{UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded}
	res, err := Verify(quote, col, Options{Root: cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem"), Time: at, PCKChain: chain, Accept: all})
	if err != nil {
		t.Fatalf("against the test root: %v\n%+v", err, res.Checks)
	}
	t.Logf("TEST-PKI quote: %s %v", res.TCBStatus, res.AdvisoryIDs)
	if _, err := Verify(quote, col, Options{Time: at, PCKChain: chain, Accept: all}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("against the real root: %v", err)
	}
}

func FuzzParseCollateral(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/sgx_quote_collateral.json"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/tcbInfo.json"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/qeIdentity.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseCollateralBundle(b)
		if body, _, err := ParseSignedJSON(b); err == nil {
			ParseTCBInfo(body)
			ParseQEIdentity(body)
		}
		ParseCRL(b)
	})
}

func FuzzParseCertificationData(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/derived/pck_chain_from_quote.pem"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertChain(b)
		if err != nil {
			return
		}
		for _, c := range certs {
			ParsePCKExtensions(c)
		}
	})
}
