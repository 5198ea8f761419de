package sgxsdk

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"slices"
	"testing"
)

// The measurement benchmarks report throughput over the bytes hashed (the
// record log), so the ratio to the raw SHA-256 sub-benchmark in the same
// run is the overhead of building the log. Run:
//
//	go test ./sgxsdk -run XXX -bench Measure -benchmem

// bigCode returns e1_small with its read-only data segment grown so the
// image carries about 32 MiB of code and data: the segment's file size and
// memory size are extended over bytes appended at the end of the file.
func bigCode(b *testing.B) []byte {
	base := read(b, "enclaves/e1_small.so")
	e, err := ParseELF(base)
	if err != nil {
		b.Fatal(err)
	}
	const grow = 32 << 20
	le := binary.LittleEndian
	// Move the last PT_LOAD's data to the end of the file and grow it; the
	// enclave's other segments are unchanged.
	out := slices.Clone(base)
	last := e.Segments[len(e.Segments)-1]
	phoff := le.Uint64(out[32:])
	newOff := roundUp(uint64(len(out)), pageSize) + last.VAddr%pageSize
	out = append(out, make([]byte, newOff-uint64(len(out)))...)
	out = append(out, base[last.Offset:last.Offset+last.FileSize]...)
	pad := make([]byte, grow)
	for i := range pad {
		pad[i] = byte(i*7 + i>>12)
	}
	out = append(out, pad...)
	ph := out[phoff+uint64(last.Index)*phdrSize:]
	le.PutUint64(ph[8:], newOff)
	le.PutUint64(ph[32:], last.FileSize+grow)
	le.PutUint64(ph[40:], last.MemSize+grow)
	return out
}

func benchMeasure(b *testing.B, elf []byte, cfg *Config) {
	im, err := Prepare(elf, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	l := newLoader(b.Context(), im.elf, im.bd.meta, im.mage)
	if err := l.run(); err != nil {
		b.Fatal(err)
	}
	logBytes := int64(l.h.Size())
	b.Run("measure", func(b *testing.B) {
		b.SetBytes(logBytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := im.Measure(); err != nil {
				b.Fatal(err)
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(len(elf))/(1<<20), "file-MiB")
	})
	// Raw SHA-256 over as many bytes, from a buffer as large as the log,
	// so both sides read the same volume from memory.
	b.Run("sha256", func(b *testing.B) {
		buf := make([]byte, logBytes)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.SetBytes(logBytes)
		for b.Loop() {
			sha256.Sum256(buf)
		}
	})
}

// BenchmarkMeasureHeap64M measures vector s4 (64 MiB heap: 16384 EADD-only
// pages). Allocation per op stays small: heap pages are never materialised.
func BenchmarkMeasureHeap64M(b *testing.B) {
	cfg, err := ParseConfig(read(b, "configs/cD_heap64m.config.xml"))
	if err != nil {
		b.Fatal(err)
	}
	benchMeasure(b, read(b, "enclaves/e5_bigheap.so"), cfg)
}

// BenchmarkMeasureCode32M measures an enclave with about 32 MiB of code and
// data, all EEXTENDed.
func BenchmarkMeasureCode32M(b *testing.B) {
	benchMeasure(b, bigCode(b), nil)
}

// TestMeasureMemory checks that measuring does not allocate in proportion to
// the heap or the image: a 64 MiB heap and a 32 MiB image each measure with
// well under a megabyte of allocation.
func TestMeasureMemory(t *testing.T) {
	cfg, err := ParseConfig(read(t, "configs/cD_heap64m.config.xml"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := Prepare(read(t, "enclaves/e5_bigheap.so"), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(3, func() { im.Measure() }); a > 200 {
		t.Errorf("%v allocations per measurement of a 64 MiB heap", a)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := im.Measure(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("measuring a 64 MiB heap allocated %d bytes", d)
	}
}
