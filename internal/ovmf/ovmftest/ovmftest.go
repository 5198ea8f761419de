// Package ovmftest gives tests the repository's OVMF test image: Debian
// 12's unified OVMF.fd (testdata/tdx/README.md), a TDVF image with TDX
// and SEV metadata.
package ovmftest

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// DebianOVMF returns the image's bytes, failing tb if it cannot be read.
func DebianOVMF(tb testing.TB) []byte {
	tb.Helper()
	_, self, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(self), "..", "..", "..", "testdata", "tdx", "debian12-ovmf-2022.11-6+deb12u2-OVMF.fd.gz")
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
