package sgxsdk_test

import (
	"fmt"
	"os"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// Sign an SDK enclave with a config and key, as sgx_sign does.
func ExampleSign() {
	elf, _ := os.ReadFile("../testdata/sgxsdk/enclaves/e1_small.so")
	raw, _ := os.ReadFile("../testdata/sgxsdk/configs/cA_sample_default.config.xml")
	cfg, err := sgxsdk.ParseConfig(raw)
	if err != nil {
		panic(err)
	}
	pem, _ := os.ReadFile("../testdata/sgxsdk/keys/k1.pem")
	key, err := sgx.LoadSigningKey(pem)
	if err != nil {
		panic(err)
	}
	signed, css, err := sgxsdk.Sign(elf, cfg, key, 0x20261123, nil)
	if err != nil {
		panic(err)
	}
	mr, _ := sgxsdk.MeasureSigned(signed) // the loader's view of the file
	fmt.Println(sgx.Measurement(css.EnclaveHash) == mr, mr.String()[:16])
	// Output: true 617aef868f927140
}
