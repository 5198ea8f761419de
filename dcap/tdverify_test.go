package dcap_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
)

// tdxSample is one of dcap-qvl's TDX samples (testdata/tdx/dcap-qvl): a
// real TD quote and the Intel collateral fetched for it, verified at a
// time within the collateral's validity.
type tdxSample struct {
	name   string
	at     time.Time
	status dcap.TCBStatus // "" when no TCB level matches
}

var tdxSamples = []tdxSample{
	// dcap-qvl asserts UpToDate for this one (tests/verify_quote.rs).
	{"tdx_quote", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), dcap.UpToDate},
	// A version 5 quote with a TDX 1.5 body. Its PCK certificate's SGX
	// component 8 (SEAMLDR ACM) is 3, below every level of its TCB Info
	// (5): no level matches, as dcap-qvl finds too (its test must insert a
	// permissive level to verify it, tests/verify_tcb_override.rs).
	{"tdx_quote_outdated", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), ""},
}

func readTDXSample(t *testing.T, name string) ([]byte, *dcap.Collateral) {
	t.Helper()
	q, err := os.ReadFile("../testdata/tdx/dcap-qvl/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../testdata/tdx/dcap-qvl/" + name + "_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.ParseCollateralBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	// A version 4 quote may sit in a zero-padded buffer (the TDX guest's
	// quote buffer, as the sample was captured).
	if q[0] == 4 {
		if end := quoteEnd(q); end > 0 && bytes.Count(q[end:], []byte{0}) == len(q)-end {
			q = q[:end]
		}
	}
	return q, col
}

// TestVerifyTDReal: the real TD quotes verify with their collateral to the
// expected TCB statuses; one flipped bit anywhere in the signed part of a
// quote fails it; an SGX Verify refuses a TD quote and VerifyTD an SGX
// quote; an SGX TCB Info is no TDX one.
func TestVerifyTDReal(t *testing.T) {
	for _, s := range tdxSamples {
		t.Run(s.name, func(t *testing.T) {
			q, col := readTDXSample(t, s.name)
			all := []dcap.TCBStatus{dcap.UpToDate, dcap.OutOfDate, dcap.SWHardeningNeeded, dcap.ConfigurationNeeded, dcap.ConfigurationAndSWHardeningNeeded, dcap.OutOfDateConfigurationNeeded}
			res, err := dcap.VerifyTD(q, col, dcap.Options{Time: s.at, Accept: all})
			if s.status == "" {
				if !errors.Is(err, dcap.ErrTCBNotFound) || res.TD == nil || !res.TD.TD15 {
					t.Fatalf("want no TCB level: %v", err)
				}
				for _, c := range res.Checks {
					if c.Name == dcap.CheckTCBLevel {
						break
					}
					if c.Status != dcap.Pass {
						t.Errorf("check %s: %s %s", c.Name, c.Status, c.Detail)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %q (platform %q, TDX module %q, QE %q), advisories %v", s.name, res.TCBStatus, res.PlatformTCB, res.ModuleTCB, res.QETCB, res.AdvisoryIDs)
			if res.TCBStatus != s.status || res.TD == nil {
				t.Errorf("status %q, want %q", res.TCBStatus, s.status)
			}
			// Everything before the PCK chain (header, TD body, signature,
			// attestation key, QE report, its signature and authentication
			// data), one bit at a time; every 7th byte of the PCK
			// certificate. (The chain's copy of the root is not used: the
			// root is pinned.)
			pem := bytes.Index(q, []byte("-----BEGIN"))
			leafEnd := pem + bytes.Index(q[pem:], []byte("-----END"))
			for i := 0; i < leafEnd; i++ {
				if i >= pem && i%7 != 0 {
					continue
				}
				bad := bytes.Clone(q)
				bad[i] ^= 1 << (i % 8)
				// A flip fails before the TCB level is looked for.
				if _, err := dcap.VerifyTD(bad, col, dcap.Options{Time: s.at, Accept: all}); err == nil || errors.Is(err, dcap.ErrTCBNotFound) {
					t.Fatalf("bit %d of byte %d flipped: %v", i%8, i, err)
				}
			}
			if _, err := dcap.Verify(q, col, dcap.Options{Time: s.at}); err == nil {
				t.Error("Verify (SGX) accepted a TD quote")
			}
		})
	}
	sgxQuote, err := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	if err != nil {
		t.Fatal(err)
	}
	_, col := readTDXSample(t, "tdx_quote")
	if _, err := dcap.VerifyTD(sgxQuote, col, dcap.Options{Time: tdxSamples[0].at}); err == nil {
		t.Error("VerifyTD accepted an SGX quote")
	}
	if _, err := dcap.ParseTCBInfo(col.TCBInfo); err == nil {
		t.Error("a TDX TCB Info parsed as an SGX one")
	}
	if _, err := dcap.ParseQEIdentity(col.QEIdentity); err == nil {
		t.Error("the TD QE's identity parsed as the QE's")
	}
}
