package gramine_test

import (
	"fmt"
	"os"

	"github.com/magesgx/mage/gramine"
)

// Measure a Gramine enclave from its .manifest.sgx and the libpal.so it
// runs with, as Gramine's signer and loader do.
func Example() {
	manifest, _ := os.ReadFile("../testdata/gramine/single/d1_t1_64M_debug/d1_t1_64M_debug.manifest.sgx")
	libpal, _ := os.ReadFile("../testdata/gramine/fakepal.so")
	m, err := gramine.ParseManifest(manifest)
	if err != nil {
		panic(err)
	}
	p, err := gramine.ParseLibpal(libpal)
	if err != nil {
		panic(err)
	}
	e, err := gramine.NewEnclave(m, p)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Measure())
	// Output: aaca60c0035c95031f2826bda5d3f34eb77802329100e1821358526eceee2b68
}
