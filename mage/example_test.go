package mage_test

import (
	"context"
	"fmt"
	"os"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
)

// Every member of a group derives every member's MRENCLAVE from its own
// .sgx_mage section.
func ExampleDeriveAll() {
	section, err := os.ReadFile("../testdata/sgxsdk/mage/g1.sgx_mage_table.bin")
	if err != nil {
		panic(err)
	}
	all, err := mage.DeriveAll(section)
	if err != nil {
		panic(err)
	}
	for i, m := range all {
		fmt.Println(i, m.String()[:16])
	}
	// Output:
	// 0 f12017a9b03c6add
	// 1 eebb00712d8baaa4
	// 2 b845e6c976f57650
}

// A verifier that trusts one member's MRENCLAVE extends that trust to the
// whole group through the member's table.
func ExampleTrust() {
	section, _ := os.ReadFile("../testdata/sgxsdk/mage/g1.sgx_mage_table.bin")
	pinned, _ := sgx.ParseMeasurement("eebb00712d8baaa4ef780b773203f602bae9e2a4604e881730a3481a9dcbab4d")
	g, err := mage.Trust(context.Background(), pinned, section)
	if err != nil {
		panic(err)
	}
	fmt.Println("the table is member", g.Self, "of a group of", len(g.Measurements))
	// Output: the table is member 1 of a group of 3
}
