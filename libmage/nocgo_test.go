//go:build !cgo

package libmage

import "testing"

// TestCgoOff says why the C library is not tested in this build: its tests
// call it through cgo. .ci/run runs them with gcc.
func TestCgoOff(t *testing.T) {
	t.Skip("libmage: cgo is off (CGO_ENABLED=0, or no C compiler): the C library's tests need cgo and gcc; run go test ./libmage with CGO_ENABLED=1")
}
