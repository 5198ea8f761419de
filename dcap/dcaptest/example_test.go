package dcaptest_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
)

// A fake PCS serves recorded collateral; a verifier configured with only
// its URL (and a cache) fetches what a quote needs and verifies it.
func Example() {
	bundle, _ := os.ReadFile("../testdata/phala-dcap-qvl/sgx_quote_collateral.json")
	col, err := dcap.ParseCollateralBundle(bundle)
	if err != nil {
		panic(err)
	}
	srv := dcaptest.NewServer(col, "00A067110000")
	defer srv.Close()

	raw, _ := os.ReadFile("../testdata/phala-dcap-qvl/sgx_quote")
	q, err := dcap.ParseQuote(raw)
	if err != nil {
		panic(err)
	}
	at := time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Time: func() time.Time { return at }}
	defer cache.Close()
	fetched, err := cache.Collateral(context.Background(), q)
	if err != nil {
		panic(err)
	}
	res, err := dcap.Verify(raw, fetched, dcap.Options{Time: at, Accept: []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}})
	fmt.Println(res.TCBStatus, res.AdvisoryIDs, err)
	// Output: ConfigurationAndSWHardeningNeeded [INTEL-SA-00289 INTEL-SA-00615] <nil>
}
