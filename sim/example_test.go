package sim_test

import (
	"context"
	"fmt"
	"os"

	"github.com/magesgx/mage/sim"
)

// Load a signed enclave on a simulated platform, have it report to another
// enclave, and verify the report there.
func ExamplePlatform_Load() {
	dir, _ := os.MkdirTemp("", "platform")
	defer os.RemoveAll(dir)
	p, err := sim.Open(dir)
	if err != nil {
		panic(err)
	}
	load := func(f string) *sim.Enclave {
		b, _ := os.ReadFile("../testdata/sgxsdk/signed/" + f)
		e, err := p.Load(context.Background(), b, nil)
		if err != nil {
			panic(err)
		}
		return e
	}
	a, b := load("g1_v0.signed.so"), load("g1_v1.signed.so")
	r, _ := a.Report(b.TargetInfo(), [64]byte{'h', 'i'})
	body, err := b.VerifyReport(r)
	fmt.Println(err == nil, body.MRENCLAVE == a.MRENCLAVE, len(a.MageSection()))
	// Output: true true 4096
}
