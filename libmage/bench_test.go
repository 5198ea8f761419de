//go:build cgo

package libmage

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"

	"github.com/magesgx/mage/mage"
)

// BenchmarkDerive derives one member from a one-page table (g1) in C and in
// Go, beside raw SHA-256 over the same 5,184 bytes of records (81 blocks:
// one EADD, 16 EEXTENDs and 4,096 bytes of page) in C and in Go.
func BenchmarkDerive(b *testing.B) {
	sec, err := os.ReadFile("../testdata/sgxsdk/mage/g1.sgx_mage_table.bin")
	if err != nil {
		b.Fatal(err)
	}
	records := make([]byte, 5184)
	for i := range records {
		records[i] = byte(i)
	}
	b.Run("C-derive", func(b *testing.B) {
		b.SetBytes(5184)
		for b.Loop() {
			if _, st := Derive(sec, 1); st != OK {
				b.Fatal(st)
			}
		}
	})
	b.Run("C-sha256", func(b *testing.B) {
		b.SetBytes(5184)
		for b.Loop() {
			SHA256(records)
		}
	})
	b.Run("Go-derive", func(b *testing.B) {
		b.SetBytes(5184)
		for b.Loop() {
			if _, err := mage.Derive(sec, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Go-sha256", func(b *testing.B) {
		b.SetBytes(5184)
		for b.Loop() {
			sha256.Sum256(records)
		}
	})
	// The ratios, measured in this run, interleaved so that machine noise
	// hits all four alike.
	b.Run("ratios", func(b *testing.B) {
		var cd, cs, gd, gs time.Duration
		const k = 200
		for b.Loop() {
			t0 := time.Now()
			for range k {
				Derive(sec, 1)
			}
			t1 := time.Now()
			for range k {
				SHA256(records)
			}
			t2 := time.Now()
			for range k {
				mage.Derive(sec, 1)
			}
			t3 := time.Now()
			for range k {
				sha256.Sum256(records)
			}
			t4 := time.Now()
			cd, cs, gd, gs = cd+t1.Sub(t0), cs+t2.Sub(t1), gd+t3.Sub(t2), gs+t4.Sub(t3)
		}
		n := float64(b.N * k)
		b.ReportMetric(float64(cd.Nanoseconds())/n/1000, "C-µs/derive")
		b.ReportMetric(float64(cd)/float64(cs), "C-derive/C-sha256")
		b.ReportMetric(float64(cd)/float64(gd), "C-derive/Go-derive")
		b.ReportMetric(float64(gd)/float64(gs), "Go-derive/Go-sha256")
	})
}
