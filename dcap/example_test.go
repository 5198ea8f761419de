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
		panic(err)
	}
	res, err := dcap.Verify(quote, col, dcap.Options{
		Time:   time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC),
		Accept: []string{dcap.UpToDate, dcap.ConfigurationAndSWHardeningNeeded},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.TCBStatus, res.AdvisoryIDs)
	// Output: ConfigurationAndSWHardeningNeeded [INTEL-SA-00289 INTEL-SA-00615]
}
