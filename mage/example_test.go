package mage_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
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

// A rolling update: an updatable group of three, and a successor that
// keeps member 0, replaces member 2 and drops member 1. The old member 0
// verifies the new member by the update key's statement, then refuses the
// dropped member. (Entries here are synthetic; group signing computes
// them from the members.)
func ExampleLineageVerifier() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	entry := func(i uint64) mage.Entry {
		return mage.Entry{State: measure.State{Size: 64 * i, H: [8]uint32{uint32(i)}}, Offset: 0x3000}
	}
	sdk := func(n int) []mage.Kind { return slices.Repeat([]mage.Kind{mage.KindSDK}, n) }

	t0, proofs0, _ := mage.NewUpdatableTable(sdk(3), []mage.Entry{entry(1), entry(2), entry(3)}, key.Public().(ed25519.PublicKey))
	t0.SDKSectionSize = mage.PageSize
	l0 := &mage.Lineage{Tables: []*mage.VersionedTable{t0}}
	t1, proofs1, _ := mage.NewSuccessorTable(t0, sdk(2), []mage.Entry{entry(1), entry(4)}, key.Public().(ed25519.PublicKey))
	l1, err := l0.Extend(t1, key) // the update key signs the successor statement
	if err != nil {
		panic(err)
	}

	// Member 0 measured the epoch-0 table (its .sgx_mage section).
	section := make([]byte, mage.PageSize)
	copy(section, t0.Marshal())
	d, _ := mage.NewSectionDeriver(section, nil)
	v, self, err := mage.NewLineageVerifier(d, &mage.LineageProof{Measured: 0, Lineage: *l0, Proof: proofs0[0]})
	if err != nil {
		panic(err)
	}
	fmt.Println("member", self.Index, "knows epoch", v.Epoch())

	m, err := v.Verify(&mage.LineageProof{Measured: 1, Lineage: *l1, Proof: proofs1[1]})
	fmt.Println("new member", m.Index, "of epoch", m.Epoch, err)
	_, err = v.Verify(&mage.LineageProof{Measured: 0, Lineage: *l0, Proof: proofs0[1]})
	fmt.Println("dropped member refused:", errors.Is(err, mage.ErrStale))
	// Output:
	// member 0 knows epoch 0
	// new member 1 of epoch 1 <nil>
	// dropped member refused: true
}
