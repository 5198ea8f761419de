package dcap_test

import (
	"fmt"
	"os"
	"time"

	"github.com/magesgx/mage/dcap"
)

// Verify a real quote with Intel's collateral at a time inside the
// collateral's validity, accepting its TCB status.
func ExampleVerify() {
	quote, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	bundle, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote_collateral.json")
	col, err := dcap.ParseCollateralBundle(bundle)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := dcap.Verify(quote, col, dcap.Options{
		Time:   time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC),
		Accept: []dcap.TCBStatus{dcap.UpToDate, dcap.ConfigurationAndSWHardeningNeeded},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.TCBStatus, res.AdvisoryIDs)
	fmt.Println("MRENCLAVE", res.Enclave.MRENCLAVE)
	// Output:
	// ConfigurationAndSWHardeningNeeded [INTEL-SA-00289 INTEL-SA-00615]
	// MRENCLAVE 33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb
}

// The default policy accepts UpToDate only; the Result still reports every
// check, the failed one and the status found.
func ExampleVerify_refused() {
	quote, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	bundle, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote_collateral.json")
	col, _ := dcap.ParseCollateralBundle(bundle)
	res, err := dcap.Verify(quote, col, dcap.Options{Time: time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)})
	fmt.Println(err)
	last := res.Checks[len(res.Checks)-1]
	fmt.Println(last.Name, last.Status)
	// Output:
	// dcap: TCB status not accepted by policy: ConfigurationAndSWHardeningNeeded (platform ConfigurationAndSWHardeningNeeded, QE UpToDate; accepted: UpToDate)
	// tcb_status fail
}

// Verify only a quote's signatures and PCK chain, against an explicitly
// chosen root (here Intel's; for the simulated platform, its root). This
// is weaker than Verify: no revocation, TCB level or QE identity check.
func ExampleVerifyWithoutCollateral() {
	quote, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	res, err := dcap.VerifyWithoutCollateral(quote, dcap.SignatureOptions{
		Root: dcap.IntelRootCA(),
		Time: time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range res.Checks {
		fmt.Println(c.Name, c.Status)
	}
	// Output:
	// parse pass
	// pck_chain pass
	// qe_report_signature pass
	// qe_report_data pass
	// quote_signature pass
}

// Parse a quote and read the enclave's identity. Parsing verifies nothing.
func ExampleParseQuote() {
	raw, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	q, err := dcap.ParseQuote(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("version", q.Header.Version, "certification data type", q.Certification.Type)
	fmt.Println("MRSIGNER", q.Body.MRSIGNER)
	fmt.Printf("report data %q\n", q.Body.ReportData[:13])
	// Output:
	// version 3 certification data type 5
	// MRSIGNER 815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6
	// report data "Hello, world!"
}

// A parsed quote marshals back to exactly its bytes; a quoting enclave
// fills the same fields and signs SignedBytes to make one.
func ExampleQuote_Marshal() {
	raw, _ := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	q, _ := dcap.ParseQuote(raw)
	again, _ := q.Marshal()
	fmt.Println(string(again) == string(raw))
	fmt.Println(dcap.QEReportData(q.AttestKey, q.QEAuthData) == q.QEReport.ReportData)
	// Output:
	// true
	// true
}
