package measure_test

import (
	"fmt"

	"github.com/magesgx/mage/sgx/measure"
)

// A measurement can stop after any record, be stored, and be finished
// later: this is what a MAGE table holds for every member.
func ExampleResume() {
	page := make([]byte, measure.PageSize)
	h := measure.New()
	h.ECreate(1, 0x10000)
	h.AddPage(0, measure.SecinfoREG|measure.SecinfoR|measure.SecinfoX, page)
	st := h.State() // store this...
	h.AddPage(0x1000, measure.SecinfoREG|measure.SecinfoR, page)
	direct := h.Sum()

	r, _ := measure.Resume(st) // ...and finish it elsewhere
	r.AddPage(0x1000, measure.SecinfoREG|measure.SecinfoR, page)
	fmt.Println(r.Sum() == direct, st.Size)
	// Output: true 5248
}
