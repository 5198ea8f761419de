package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

var acceptAll = []TCBStatus{UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded}

func TestVerifyPhala(t *testing.T) {
	col := phalaCollateral(t)
	quote := tdata(t, "phala-dcap-qvl/sgx_quote")
	// Default policy: UpToDate only, so the status is refused, and the
	// result still says everything.
	res, err := Verify(quote, col, Options{Time: phalaTime})
	if !errors.Is(err, ErrStatusRefused) || res.TCBStatus != ConfigurationAndSWHardeningNeeded || failed(res) != CheckTCBStatus {
		t.Fatalf("default policy: %v, status %q", err, res.TCBStatus)
	}
	accept := Options{Accept: []TCBStatus{ConfigurationAndSWHardeningNeeded}}
	// The window stated in SOURCES.md is 2025-06-19T10:56:11Z ..
	// 2025-07-19T10:23:17Z (the PCK CRL's nextUpdate less a second), but
	// the QE Identity's own nextUpdate is 2025-07-19T10:01:18Z: the
	// collateral verifies from the first to that, both included.
	qeNext := time.Date(2025, 7, 19, 10, 1, 18, 0, time.UTC)
	for _, at := range []time.Time{time.Date(2025, 6, 19, 10, 56, 11, 0, time.UTC), phalaTime, qeNext} {
		accept.Time = at
		res, err = Verify(quote, col, accept)
		if err != nil {
			t.Fatalf("at %v: %v\n%+v", at, err, res.Checks)
		}
		if res.TCBStatus != ConfigurationAndSWHardeningNeeded || !slices.Equal(res.AdvisoryIDs, []string{"INTEL-SA-00289", "INTEL-SA-00615"}) ||
			res.PlatformTCB != ConfigurationAndSWHardeningNeeded || res.QETCB != UpToDate || res.FMSPC != "00A067110000" {
			t.Errorf("at %v: result %+v", at, res)
		}
	}
	if len(res.Checks) != len(checkOrder) {
		t.Errorf("%d checks, want %d", len(res.Checks), len(checkOrder))
	}
	for i, c := range res.Checks {
		if c.Name != checkOrder[i] || c.Status != Pass {
			t.Errorf("check %d: %+v", i, c)
		}
	}
	// Outside the collateral window: before the TCB Info is issued, after
	// the QE Identity's nextUpdate (still inside the stated window), after
	// the PCK CRL's nextUpdate.
	for _, c := range []struct {
		at    time.Time
		check string
	}{
		{time.Date(2025, 6, 19, 10, 56, 10, 0, time.UTC), CheckTCBInfoValidity},
		{qeNext.Add(time.Second), CheckQEIdentityValidity},
		{time.Date(2025, 7, 19, 10, 23, 17, 0, time.UTC), CheckQEIdentityValidity},
		{time.Date(2025, 7, 19, 10, 23, 19, 0, time.UTC), CheckPCKCRL},
	} {
		accept.Time = c.at
		if res, err := Verify(quote, col, accept); err == nil || failed(res) != c.check {
			t.Errorf("at %v: %v (failed %q), want a failure at %s", c.at, err, failed(res), c.check)
		}
	}
	// All statuses accepted: still ConfigurationAndSWHardeningNeeded.
	if res, err := Verify(quote, col, Options{Time: phalaTime, Accept: acceptAll}); err != nil || res.TCBStatus != ConfigurationAndSWHardeningNeeded {
		t.Errorf("accept all: %v", err)
	}
	// A test root refuses the real quote.
	if _, err := Verify(quote, col, Options{Time: phalaTime, Accept: acceptAll, Root: cert(t, "intel-qvl-sampledata-TESTPKI/trustedRootCaCert.pem")}); !errors.Is(err, ErrUntrustedRoot) {
		t.Errorf("TEST root: %v", err)
	}
	// No collateral: the quote's own checks are made, then a failure.
	res, err = Verify(quote, nil, Options{Time: phalaTime, Accept: acceptAll})
	if !errors.Is(err, ErrCollateral) || failed(res) != CheckRootCACRL || res.Checks[4].Status != Pass {
		t.Errorf("no collateral: %v %+v", err, res.Checks)
	}
}

// TestCollateralFiles builds the Phala collateral from separate files as
// Intel's PCS serves them and checks it equals the bundle.
func TestCollateralFiles(t *testing.T) {
	bundle := phalaCollateral(t)
	d := "phala-dcap-qvl/derived/"
	tcb, sig, err := ParseSignedJSON(tdata(t, d+"tcb_info.json"))
	if err != nil || sig != nil || !bytes.Equal(tcb, bundle.TCBInfo) {
		t.Fatalf("tcb_info.json: %v", err)
	}
	tsig, err := parseSig(string(tdata(t, d+"tcb_info.sig.hex")))
	if err != nil {
		t.Fatal(err)
	}
	qe, _, err := ParseSignedJSON(tdata(t, d+"qe_identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	qsig, err := parseSig(string(tdata(t, d+"qe_identity.sig.hex")))
	if err != nil {
		t.Fatal(err)
	}
	chain := func(p string) []*x509.Certificate {
		c, err := ParseCertChain(tdata(t, d+p))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	crl := func(p string) *x509.RevocationList {
		l, err := ParseCRL(tdata(t, d+p))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	col := &Collateral{TCBInfo: tcb, TCBInfoSignature: tsig, TCBInfoIssuerChain: chain("tcb_info_issuer_chain.pem"),
		QEIdentity: qe, QEIdentitySignature: qsig, QEIdentityIssuerChain: chain("qe_identity_issuer_chain.pem"),
		PCKCRL: crl("pck_crl.der"), PCKCRLIssuerChain: chain("pck_crl_issuer_chain.pem"), RootCACRL: crl("root_ca_crl.der")}
	res, err := Verify(tdata(t, "phala-dcap-qvl/sgx_quote"), col, Options{Time: phalaTime, Accept: []TCBStatus{ConfigurationAndSWHardeningNeeded}})
	if err != nil || res.TCBStatus != ConfigurationAndSWHardeningNeeded {
		t.Fatalf("from files: %v", err)
	}
	// PCS response form: {"tcbInfo": ..., "signature": ...}, with the
	// signed value kept byte for byte (spacing included).
	wrapped := []byte(`{"tcbInfo": ` + string(tcb) + ` , "signature":"` + strings.TrimSpace(string(tdata(t, d+"tcb_info.sig.hex"))) + `"}`)
	body, s2, err := ParseSignedJSON(wrapped)
	if err != nil || !bytes.Equal(body, tcb) || !bytes.Equal(s2, tsig) {
		t.Errorf("PCS response form: %v", err)
	}
	// CRLs in PEM, hex and DER are the same CRL; the URL-encoded PEM of
	// PCS headers is a chain.
	der := tdata(t, d+"pck_crl.der")
	for _, enc := range [][]byte{der, []byte(" " + hex.EncodeToString(der) + "\n")} {
		if l, err := ParseCRL(enc); err != nil || !bytes.Equal(l.Raw, der) {
			t.Errorf("CRL encoding %.10q: %v", enc, err)
		}
	}
	if l, err := ParseCRL(tdata(t, "intel-qvl-sampledata-TESTPKI/intermediateCaCrl.pem")); err != nil || !bytes.Equal(l.Raw, tdata(t, "intel-qvl-sampledata-TESTPKI/intermediateCaCrl.der")) {
		t.Errorf("PEM CRL: %v", err)
	}
	urlChain := strings.NewReplacer("-", "%2D", "\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(string(tdata(t, d+"tcb_info_issuer_chain.pem")))
	if c, err := ParseCertChain([]byte(urlChain)); err != nil || len(c) != 2 {
		t.Errorf("URL-encoded chain: %v", err)
	}
}

func TestVerifyTestPKI(t *testing.T) {
	d := "intel-qvl-sampledata-TESTPKI/"
	quote := tdata(t, d+"quote.dat")
	tcb, tsig, err := ParseSignedJSON(tdata(t, d+"tcbInfo.json"))
	if err != nil {
		t.Fatal(err)
	}
	qe, qsig, err := ParseSignedJSON(tdata(t, d+"qeIdentity.json"))
	if err != nil {
		t.Fatal(err)
	}
	signChain, err := ParseCertChain(tdata(t, d+"tcbSignChain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, err := ParseCRL(tdata(t, d+"rootCaCrl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pckCRL, err := ParseCRL(tdata(t, d+"intermediateCaCrl.der"))
	if err != nil {
		t.Fatal(err)
	}
	col := &Collateral{TCBInfo: tcb, TCBInfoSignature: tsig, TCBInfoIssuerChain: signChain, QEIdentity: qe, QEIdentitySignature: qsig,
		QEIdentityIssuerChain: signChain, PCKCRL: pckCRL, RootCACRL: rootCRL}
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	testRoot := cert(t, d+"trustedRootCaCert.pem")
	res, err := Verify(quote, col, Options{Root: testRoot, Time: at, PCKChain: testPKIChain(t), Accept: acceptAll})
	if err != nil {
		t.Fatalf("against the test root: %v\n%+v", err, res.Checks)
	}
	t.Logf("TEST-PKI quote: %s (platform %s, QE %s) %v", res.TCBStatus, res.PlatformTCB, res.QETCB, res.AdvisoryIDs)
	if res.FMSPC != "00707F000000" || res.PCK.PCESVN != 3 {
		t.Errorf("result %+v", res)
	}
	// The real root (the default) refuses it.
	res, err = Verify(quote, col, Options{Time: at, PCKChain: testPKIChain(t), Accept: acceptAll})
	if !errors.Is(err, ErrUntrustedRoot) || failed(res) != CheckPCKChain {
		t.Errorf("against the real root: %v", err)
	}
	// Its collateral does not vouch for the real quote either.
	res, err = Verify(tdata(t, "phala-dcap-qvl/sgx_quote"), col, Options{Time: phalaTime, Accept: acceptAll})
	if err == nil {
		t.Error("Phala quote verified with TEST-PKI collateral")
	} else {
		t.Logf("Phala quote with TEST-PKI collateral: %s: %v", failed(res), err)
	}
}

// TestFixtureStatuses covers TCB level matching and QVL's combination of
// the platform and QE statuses on the self-made fixture.
func TestFixtureStatuses(t *testing.T) {
	cases := []struct {
		name     string
		mod      func(f *fixture)
		status   TCBStatus
		platform TCBStatus
		adv      []string
	}{
		{"second level", func(f *fixture) {}, SWHardeningNeeded, SWHardeningNeeded, []string{"INTEL-SA-00001"}},
		{"first level", func(f *fixture) { f.setPCK(5, 13) }, UpToDate, UpToDate, []string{}},
		{"PCESVN below the first level", func(f *fixture) { f.setPCK(5, 12) }, SWHardeningNeeded, SWHardeningNeeded, []string{"INTEL-SA-00001"}},
		{"last level", func(f *fixture) { f.setPCK(2, 13) }, OutOfDate, OutOfDate, []string{"INTEL-SA-00002"}},
		{"QE out of date", func(f *fixture) { f.setQESVN(7) }, OutOfDate, SWHardeningNeeded, []string{"INTEL-SA-00001", "INTEL-SA-00003"}},
		{"QE out of date, platform configuration needed", func(f *fixture) {
			f.setQESVN(6)
			f.setTCBInfo(strings.Replace(defaultTCBInfo, `"SWHardeningNeeded"`, `"ConfigurationAndSWHardeningNeeded"`, 1))
		}, OutOfDateConfigurationNeeded, ConfigurationAndSWHardeningNeeded, []string{"INTEL-SA-00001", "INTEL-SA-00003"}},
		{"levels out of order (QVL sorts them)", func(f *fixture) {
			f.setTCBInfo(`{"id":"SGX","version":3,"issueDate":"ISSUE","nextUpdate":"NEXT","fmspc":"00906ED50000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":17,"tcbLevels":[` +
				`{"tcb":{"sgxtcbcomponents":[SVN0],"pcesvn":0},"tcbDate":"2020-01-01T00:00:00Z","tcbStatus":"OutOfDate"},` +
				`{"tcb":{"sgxtcbcomponents":[SVN3],"pcesvn":11},"tcbDate":"2028-01-01T00:00:00Z","tcbStatus":"ConfigurationNeeded"}]}`)
		}, ConfigurationNeeded, ConfigurationNeeded, []string{}},
		{"TCB Info version 2", func(f *fixture) {
			comps := func(v string) string {
				var s []string
				for i := 1; i <= 16; i++ {
					s = append(s, `"sgxtcbcomp`+twoDigits(i)+`svn":`+v)
				}
				return strings.Join(s, ",")
			}
			f.setTCBInfo(`{"version":2,"issueDate":"ISSUE","nextUpdate":"NEXT","fmspc":"00906ed50000","pceId":"0000","tcbType":0,"tcbEvaluationDataNumber":5,"tcbLevels":[` +
				`{"tcb":{` + comps("5") + `,"pcesvn":13},"tcbDate":"2029-01-01T00:00:00Z","tcbStatus":"UpToDate"},` +
				`{"tcb":{` + comps("4") + `,"pcesvn":13},"tcbDate":"2028-01-01T00:00:00Z","tcbStatus":"ConfigurationNeeded","advisoryIDs":["INTEL-SA-00009"]}]}`)
		}, ConfigurationNeeded, ConfigurationNeeded, []string{"INTEL-SA-00009"}},
	}
	for _, c := range cases {
		f := newFixture(t)
		c.mod(f)
		res, err := f.verify(acceptAll...)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if res.TCBStatus != c.status || res.PlatformTCB != c.platform || !slices.Equal(res.AdvisoryIDs, c.adv) {
			t.Errorf("%s: %s (platform %s) %v, want %s (platform %s) %v", c.name, res.TCBStatus, res.PlatformTCB, res.AdvisoryIDs, c.status, c.platform, c.adv)
		}
		if c.status != UpToDate {
			if res, err := f.verify(); !errors.Is(err, ErrStatusRefused) || failed(res) != CheckTCBStatus {
				t.Errorf("%s: default policy: %v", c.name, err)
			}
		}
	}
	// Refusals.
	refusals := []struct {
		name  string
		mod   func(f *fixture)
		check string
		want  error
	}{
		{"below every TCB level", func(f *fixture) {
			f.setTCBInfo(strings.Replace(f.dates(defaultTCBInfo), `[`+svns(0)+`],"pcesvn":0`, `[`+svns(1)+`],"pcesvn":0`, 1))
			f.setPCK(0, 13)
		}, CheckTCBLevel, ErrTCBNotFound},
		{"platform revoked", func(f *fixture) {
			f.setTCBInfo(strings.Replace(defaultTCBInfo, `"SWHardeningNeeded"`, `"Revoked"`, 1))
		}, CheckTCBStatus, ErrStatusRefused},
		{"QE revoked", func(f *fixture) {
			f.setQEIdentity(strings.Replace(f.defaultQEIdentity(), `"OutOfDate"`, `"Revoked"`, 1))
			f.setQESVN(7)
		}, CheckTCBStatus, ErrStatusRefused},
		{"QE below every level", func(f *fixture) { f.setQESVN(5) }, CheckQEIdentityMatch, ErrQEIdentity},
		{"unknown TCB status", func(f *fixture) {
			f.setTCBInfo(strings.Replace(defaultTCBInfo, `"SWHardeningNeeded"`, `"Fine"`, 1))
		}, CheckTCBInfo, ErrTCBInfo},
		{"TDX TCB Info", func(f *fixture) { f.setTCBInfo(strings.Replace(defaultTCBInfo, `"SGX"`, `"TDX"`, 1)) }, CheckTCBInfo, ErrTCBInfo},
		{"tcbType 1", func(f *fixture) { f.setTCBInfo(strings.Replace(defaultTCBInfo, `"tcbType":0`, `"tcbType":1`, 1)) }, CheckTCBInfo, ErrTCBInfo},
		{"FMSPC of another platform", func(f *fixture) {
			f.setTCBInfo(strings.Replace(defaultTCBInfo, `00906ED50000`, `00906ED50001`, 1))
		}, CheckTCBInfoPlatform, ErrTCBInfo},
		{"PCE-ID of another PCE", func(f *fixture) {
			f.setTCBInfo(strings.Replace(defaultTCBInfo, `"pceId":"0000"`, `"pceId":"0001"`, 1))
		}, CheckTCBInfoPlatform, ErrTCBInfo},
		{"TCB Info not yet issued", func(f *fixture) { f.setTCBInfo(strings.Replace(defaultTCBInfo, "ISSUE", "2030-01-16T00:00:00Z", 1)) }, CheckTCBInfoValidity, ErrTCBInfo},
		{"TCB Info expired", func(f *fixture) { f.setTCBInfo(strings.Replace(defaultTCBInfo, "NEXT", "2030-01-14T00:00:00Z", 1)) }, CheckTCBInfoValidity, ErrTCBInfo},
		{"QE Identity expired", func(f *fixture) {
			f.setQEIdentity(strings.Replace(f.defaultQEIdentity(), "NEXT", "2030-01-14T00:00:00Z", 1))
		}, CheckQEIdentityValidity, ErrQEIdentity},
		{"TD_QE identity", func(f *fixture) {
			f.setQEIdentity(strings.Replace(f.defaultQEIdentity(), `"id":"QE"`, `"id":"TD_QE"`, 1))
		}, CheckQEIdentity, ErrQEIdentity},
		{"QE MRSIGNER", func(f *fixture) { f.quote.QEReport.MRSIGNER[0] ^= 1; f.signQuote() }, CheckQEIdentityMatch, ErrQEIdentity},
		{"QE ISVPRODID", func(f *fixture) { f.quote.QEReport.ISVProdID = 2; f.signQuote() }, CheckQEIdentityMatch, ErrQEIdentity},
		{"QE MISCSELECT", func(f *fixture) { f.quote.QEReport.MiscSelect = 1; f.signQuote() }, CheckQEIdentityMatch, ErrQEIdentity},
		{"QE in debug mode", func(f *fixture) { f.quote.QEReport.Attributes.Flags |= 0x02; f.signQuote() }, CheckQEIdentityMatch, ErrQEIdentity},
		{"TCB Info signed by another key", func(f *fixture) {
			f.tcbKey = mustKey(t)
			f.setTCBInfo(defaultTCBInfo)
		}, CheckTCBInfoSignature, ErrTCBInfo},
		{"QE Identity without signature", func(f *fixture) { f.col.QEIdentitySignature = nil }, CheckQEIdentitySignature, ErrQEIdentity},
	}
	for _, c := range refusals {
		f := newFixture(t)
		c.mod(f)
		res, err := f.verify(acceptAll...)
		if !errors.Is(err, c.want) || failed(res) != c.check {
			t.Errorf("%s: %v (failed %q), want %v at %s", c.name, err, failed(res), c.want, c.check)
		}
	}
	// A QE status that is neither UpToDate nor Revoked counts as OutOfDate.
	for _, c := range []struct{ platform, qe, want TCBStatus }{
		{UpToDate, UpToDate, UpToDate}, {UpToDate, OutOfDate, OutOfDate}, {SWHardeningNeeded, SWHardeningNeeded, OutOfDate},
		{ConfigurationNeeded, OutOfDate, OutOfDateConfigurationNeeded}, {OutOfDate, OutOfDate, OutOfDate},
		{OutOfDateConfigurationNeeded, OutOfDate, OutOfDateConfigurationNeeded}, {UpToDate, Revoked, Revoked}, {Revoked, UpToDate, Revoked},
	} {
		if got := converge(c.platform, c.qe); got != c.want {
			t.Errorf("converge(%s, %s) = %s, want %s", c.platform, c.qe, got, c.want)
		}
	}
}

func twoDigits(i int) string { return string([]byte{byte('0' + i/10), byte('0' + i%10)}) }

// setPCK reissues the PCK certificate with every SGX component SVN comp
// and the given PCESVN.
func (f *fixture) setPCK(comp uint8, pcesvn uint16) {
	for i := range f.pckExt.Components {
		f.pckExt.Components[i] = comp
	}
	f.pckExt.PCESVN = pcesvn
	f.pck = issue(f.t, pckTemplate(f.t, "Test SGX PCK Certificate", &f.pckExt), f.ca, &f.pckKey.PublicKey, f.caKey)
	f.quote.Certification.Data = pemChain(f.pck, f.ca, f.root)
}

func (f *fixture) setQESVN(svn uint16) {
	f.quote.QEReport.ISVSVN = svn
	f.signQuote()
}

func TestFixtureRevocation(t *testing.T) {
	T := fixtureTime
	cases := []struct {
		name  string
		mod   func(f *fixture)
		check string
		want  error
	}{
		{"PCK revoked", func(f *fixture) {
			f.col.PCKCRL = f.crl(f.ca, f.caKey, []*x509.Certificate{f.pck}, T.AddDate(0, 0, -1), T.AddDate(0, 1, 0))
		}, CheckPCKCRL, ErrRevoked},
		{"PCK CA revoked", func(f *fixture) {
			f.col.RootCACRL = f.crl(f.root, f.rootKey, []*x509.Certificate{f.ca}, T.AddDate(0, 0, -1), T.AddDate(0, 1, 0))
		}, CheckRootCACRL, ErrRevoked},
		{"TCB signing certificate revoked", func(f *fixture) {
			f.col.RootCACRL = f.crl(f.root, f.rootKey, []*x509.Certificate{f.tcbSigner}, T.AddDate(0, 0, -1), T.AddDate(0, 1, 0))
		}, CheckTCBInfoSignature, ErrRevoked},
		{"PCK CRL expired", func(f *fixture) {
			f.col.PCKCRL = f.crl(f.ca, f.caKey, nil, T.AddDate(0, -2, 0), T.AddDate(0, 0, -1))
		}, CheckPCKCRL, ErrCRL},
		{"root CRL not yet valid", func(f *fixture) {
			f.col.RootCACRL = f.crl(f.root, f.rootKey, nil, T.AddDate(0, 0, 1), T.AddDate(0, 1, 0))
		}, CheckRootCACRL, ErrCRL},
		{"PCK CRL signed by the root", func(f *fixture) {
			f.col.PCKCRL = f.crl(f.root, f.rootKey, nil, T.AddDate(0, 0, -1), T.AddDate(0, 1, 0))
		}, CheckPCKCRL, ErrCRL},
		{"root CRL missing", func(f *fixture) { f.col.RootCACRL = nil }, CheckRootCACRL, ErrCRL},
		{"PCK CRL issuer chain of another CA", func(f *fixture) {
			k := mustKey(t)
			other := issue(t, caTemplate("Test SGX PCK Processor CA"), f.root, &k.PublicKey, f.rootKey)
			f.col.PCKCRLIssuerChain = []*x509.Certificate{other, f.root}
		}, CheckPCKCRLIssuerChain, ErrChain},
	}
	for _, c := range cases {
		f := newFixture(t)
		c.mod(f)
		res, err := f.verify(acceptAll...)
		if !errors.Is(err, c.want) || failed(res) != c.check {
			t.Errorf("%s: %v (failed %q), want %v at %s", c.name, err, failed(res), c.want, c.check)
		}
	}
	// Without a PCK CRL issuer chain, the check is skipped, not failed.
	f := newFixture(t)
	f.col.PCKCRLIssuerChain = nil
	res, err := f.verify(acceptAll...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Checks {
		if (c.Status == Skip) != (c.Name == CheckPCKCRLIssuerChain) {
			t.Errorf("check %+v", c)
		}
	}
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	for _, bad := range [][]TCBStatus{{Revoked}, {"UpToDate", "uptodate"}, {""}} {
		if _, err := f.verify(bad...); !errors.Is(err, ErrPolicy) {
			t.Errorf("Accept %q: %v", bad, err)
		}
	}
	if _, err := f.verify(UpToDate, SWHardeningNeeded); err != nil {
		t.Error(err)
	}
	if _, err := f.verify(UpToDate); !errors.Is(err, ErrStatusRefused) {
		t.Error(err)
	}
}

func TestParseCollateralErrors(t *testing.T) {
	good := tdata(t, "phala-dcap-qvl/sgx_quote_collateral.json")
	for _, c := range []struct{ name, old, new string }{
		{"missing field", `"tcb_info_signature"`, `"tcb_info_signaturX"`},
		{"short signature", `"tcb_info_signature": "`, `"tcb_info_signature": "00`},
		{"not JSON", `{`, `[`},
	} {
		b := bytes.Replace(good, []byte(c.old), []byte(c.new), 1)
		if bytes.Equal(b, good) {
			t.Fatalf("%s: no change", c.name)
		}
		if _, err := ParseCollateralBundle(b); !errors.Is(err, ErrCollateral) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, _, err := ParseSignedJSON([]byte(`{"tcbInfo":{},"enclaveIdentity":{},"signature":""}`)); !errors.Is(err, ErrCollateral) {
		t.Errorf("both bodies: %v", err)
	}
	if _, err := ParseCRL([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); !errors.Is(err, ErrCollateral) {
		t.Errorf("certificate as CRL: %v", err)
	}
}

// TestTestdataIsLocal makes sure the tests read only the package's copy of
// the vectors.
func TestTestdataIsLocal(t *testing.T) {
	for _, dir := range []string{"phala-dcap-qvl", "intel-qvl-sampledata-TESTPKI", "intel-sgx-root-ca"} {
		if _, err := os.Stat(filepath.Join("testdata", dir, "SOURCES.md")); err != nil {
			t.Error(err)
		}
	}
	if !bytes.Equal(IntelRootCA().Raw, tdata(t, "intel-sgx-root-ca/Intel_SGX_Root_CA_2049.der")) {
		t.Error("embedded root differs from testdata")
	}
}

func FuzzParseCollateral(f *testing.F) {
	f.Add(tdata(f, "phala-dcap-qvl/sgx_quote_collateral.json"))
	f.Add(tdata(f, "phala-dcap-qvl/derived/tcb_info.json"))
	f.Add(tdata(f, "phala-dcap-qvl/derived/qe_identity.json"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/tcbInfo.json"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/qeIdentity.json"))
	f.Add(tdata(f, "phala-dcap-qvl/derived/pck_crl.der"))
	f.Add(tdata(f, "intel-qvl-sampledata-TESTPKI/rootCaCrl.pem"))
	quote := tdata(f, "phala-dcap-qvl/sgx_quote")
	f.Fuzz(func(t *testing.T, b []byte) {
		if col, err := ParseCollateralBundle(b); err == nil {
			Verify(quote, col, Options{Time: phalaTime, Accept: acceptAll})
		}
		if body, _, err := ParseSignedJSON(b); err == nil {
			if ti, err := ParseTCBInfo(body); err == nil {
				matchTCB(ti, &PCKExtensions{}, nil)
			}
			if qi, err := ParseQEIdentity(body); err == nil {
				matchQE(qi, &ReportBody{})
			}
		}
		ParseCRL(b)
	})
}

// TestMatchTDXModule: the TDX module must be the TCB Info's (or its
// version's identity), with its SEAM attributes under the mask; the
// version's level is the first its ISVSVN reaches.
func TestMatchTDXModule(t *testing.T) {
	signer := bytes.Repeat([]byte{7}, 48)
	mod := TDXModule{MRSIGNER: signer, Attributes: make([]byte, 8), AttributesMask: bytes.Repeat([]byte{0xff}, 8)}
	lvl := func(svn uint16, s TCBStatus) (l QEIdentityTCB) { l.TCB.ISVSVN, l.TCBStatus = svn, s; return l }
	ti := &TCBInfo{TDXModule: &mod, TDXModuleIdentities: []TDXModuleIdentity{{ID: "TDX_01", TDXModule: mod, TCBLevels: []QEIdentityTCB{lvl(6, UpToDate), lvl(4, OutOfDate)}}}}
	td := &TDReportBody{MRSignerSEAM: [48]byte(signer)}
	for _, c := range []struct {
		svn, version byte
		attrs        uint64
		signer       byte
		want         TCBStatus
		err          error
	}{
		{7, 1, 0, 7, UpToDate, nil},
		{5, 1, 0, 7, OutOfDate, nil},
		{3, 1, 0, 7, "", ErrTCBNotFound},
		{3, 0, 0, 7, "", nil}, // version 0: the base module, no level
		{7, 2, 0, 7, "", ErrTCBNotFound},
		{7, 1, 1, 7, "", ErrTCBInfo},
		{7, 1, 0, 8, "", ErrTCBInfo},
	} {
		td.TEETCBSVN[0], td.TEETCBSVN[1], td.SEAMAttributes = c.svn, c.version, c.attrs
		td.MRSignerSEAM[0] = c.signer
		got, err := matchTDXModule(ti, td)
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%+v: %v, want %v", c, err, c.err)
		case c.err == nil && err != nil:
			t.Errorf("%+v: %v", c, err)
		case c.err == nil && c.want == "" && got != nil:
			t.Errorf("%+v: a level %s", c, got.TCBStatus)
		case c.err == nil && c.want != "" && (got == nil || got.TCBStatus != c.want):
			t.Errorf("%+v: %v, want %s", c, got, c.want)
		}
	}
}
