//go:build cgo

package libmage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

const vectors = "../testdata/sgxsdk"

// goLines is what the C library must report for section, computed with
// package mage: the whole-table check, then for each index below max the
// derivation, the member found by that measurement, and trust from it.
func goLines(section []byte, max int) []string {
	var out []string
	if t, err := mage.ParseTable(section); err == nil {
		out = append(out, fmt.Sprintf("count ok %d", len(t.Entries)))
	} else {
		out = append(out, "count err")
	}
	all, allErr := mage.DeriveAll(section)
	for i := range max {
		m, err := mage.Derive(section, i)
		if err != nil {
			out = append(out, fmt.Sprintf("derive %d err", i))
			continue
		}
		out = append(out, fmt.Sprintf("derive %d ok %s", i, m))
		idx := -1
		if allErr == nil {
			idx = slices.Index(all, m)
		}
		out = append(out, fmt.Sprintf("find %d %d", i, idx))
		if g, err := mage.Trust(context.Background(), m, section); err == nil {
			out = append(out, fmt.Sprintf("trust %d ok %d", i, g.Self))
		} else {
			out = append(out, fmt.Sprintf("trust %d err", i))
		}
	}
	return out
}

// cLines is the same report from the C library, through cgo.
func cLines(section []byte, max int) []string {
	var out []string
	if n, st := Count(section); st == OK {
		out = append(out, fmt.Sprintf("count ok %d", n))
	} else {
		out = append(out, "count err")
	}
	for i := range max {
		m, st := Derive(section, uint64(i))
		if st != OK {
			out = append(out, fmt.Sprintf("derive %d err", i))
			continue
		}
		out = append(out, fmt.Sprintf("derive %d ok %x", i, m))
		out = append(out, fmt.Sprintf("find %d %d", i, Find(section, m)))
		if self, st := Trust(section, m); st == OK {
			out = append(out, fmt.Sprintf("trust %d ok %d", i, self))
		} else {
			out = append(out, fmt.Sprintf("trust %d err", i))
		}
	}
	return out
}

func same(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("%s: line %d: C %q, Go %q", name, i, g, w)
				return
			}
		}
	}
}

func read(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sections returns every table of the test vectors: the reference groups'
// tables, and the section of every signed member (with the member's real,
// replayed MRENCLAVE).
func sections(t testing.TB) (map[string][]byte, map[string]sgx.Measurement) {
	secs := map[string][]byte{
		"g1 table": read(t, "mage/g1.sgx_mage_table.bin"),
		"g2 table": read(t, "mage/g2.sgx_mage_table.bin"),
	}
	real := map[string]sgx.Measurement{}
	files, _ := filepath.Glob(filepath.Join(vectors, "signed", "*.signed.so"))
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		s, err := sgxsdk.ParseSigned(raw)
		if err != nil {
			t.Fatal(err)
		}
		sec := s.ELF.MageSection()
		if sec == nil {
			continue
		}
		mr, err := s.Measure(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		secs[name], real[name] = sec, mr
	}
	return secs, real
}

// TestVectors: C equals Go on every table of the vectors, and derives every
// signed member's real MRENCLAVE at its own index.
func TestVectors(t *testing.T) {
	secs, real := sections(t)
	members := 0
	for name, sec := range secs {
		same(t, name, cLines(sec, 90), goLines(sec, 90))
		mr, ok := real[name]
		if !ok {
			continue
		}
		g, err := mage.Trust(context.Background(), mr, sec)
		if err != nil {
			continue // signed alone, not a group member
		}
		members++
		if idx := Find(sec, mr); idx != int64(g.Self) {
			t.Errorf("%s: C finds the member's real MRENCLAVE %s at %d, Go at %d", name, mr, idx, g.Self)
		}
		if self, st := Trust(sec, mr); st != OK || int(self) != g.Self {
			t.Errorf("%s: trust %d %v", name, self, st)
		}
	}
	if members != 13 {
		t.Errorf("%d group members among the signed vectors, want 13 (g1 and g2)", members)
	}
}

// randomTable makes a section of 1 to 3 pages (sometimes 16) with up to
// capacity entries; bad, if true, breaks it in one random way.
func randomTable(r *rand.Rand, bad bool) []byte {
	pages := 1 + r.IntN(3)
	if r.IntN(10) == 0 {
		pages = 16
	}
	sec := make([]byte, pages*4096)
	n := r.IntN(min(mage.Capacity(len(sec)), 12) + 1)
	binary.LittleEndian.PutUint64(sec, uint64(n))
	for i := range n {
		e := sec[8+48*i:]
		binary.LittleEndian.PutUint64(e, uint64(1+r.IntN(1<<20))*64)
		binary.LittleEndian.PutUint64(e[8:], uint64(r.IntN(1<<16))*4096)
		for k := 16; k < 48; k++ {
			e[k] = byte(r.Uint32())
		}
	}
	if bad {
		switch r.IntN(6) {
		case 0:
			sec[r.IntN(len(sec))] ^= byte(1 + r.IntN(255))
		case 1:
			binary.LittleEndian.PutUint64(sec, uint64(r.Uint64()))
		case 2:
			sec = sec[:len(sec)-1-r.IntN(100)]
		case 3:
			if n > 0 {
				binary.LittleEndian.PutUint64(sec[8+48*r.IntN(n):], uint64(r.IntN(1000)))
			}
		case 4:
			if n > 0 {
				binary.LittleEndian.PutUint64(sec[16+48*r.IntN(n):], uint64(r.IntN(1<<20)))
			}
		case 5:
			sec = append(sec, make([]byte, 17*4096)...)
		}
	}
	return sec
}

// TestRandomTables: C equals Go on random valid and broken tables.
func TestRandomTables(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		sec := randomTable(r, i%2 == 1)
		same(t, fmt.Sprintf("table %d", i), cLines(sec, 14), goLines(sec, 14))
	}
}

// TestHostile: every input the C functions could misread is refused, the
// same way Go refuses it, with the status that names the problem.
func TestHostile(t *testing.T) {
	g1 := read(t, "mage/g1.sgx_mage_table.bin")
	mod := func(f func(b []byte) []byte) []byte { return f(slices.Clone(g1)) }
	cases := []struct {
		name string
		sec  []byte
		want Status
	}{
		{"empty", nil, ErrNull},
		{"short", g1[:100], ErrSize},
		{"not pages", append(slices.Clone(g1), 1), ErrSize},
		{"too big", make([]byte, 17*4096), ErrSize},
		{"count over capacity", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 86); return b }), ErrCount},
		{"versioned", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<63|3); return b }), ErrVer},
		{"entry size zero", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 0); return b }), ErrEntry},
		{"entry size odd", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[8:], 65); return b }), ErrEntry},
		{"entry offset", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 0x3001); return b }), ErrEntry},
		{"padding", mod(func(b []byte) []byte { b[4095] = 1; return b }), ErrPad},
	}
	for _, c := range cases {
		if _, st := Count(c.sec); st != c.want {
			t.Errorf("%s: mage_count %v, want %v", c.name, st, c.want)
		}
		if _, err := mage.ParseTable(c.sec); err == nil {
			t.Errorf("%s: Go accepts it", c.name)
		}
		if Find(c.sec, [32]byte{}) != -1 {
			t.Errorf("%s: mage_find found something", c.name)
		}
	}
	if _, st := Derive(g1, 3); st != ErrIndex {
		t.Errorf("index past the count: %v", st)
	}
	if _, st := Trust(g1, [32]byte{1}); st != ErrNone {
		t.Errorf("trust in a stranger: %v", st)
	}
	// The prototype's API over this binary's own (empty) section.
	if SGXGetSize() != 0 {
		t.Errorf("sgx_mage_get_size of an empty section: %d", SGXGetSize())
	}
	if _, st := SGXDerive(0); st != 2 { // SGX_ERROR_INVALID_PARAMETER
		t.Errorf("sgx_mage_derive_measurement past the count: %#x", st)
	}
	if st := SGXDeriveNil(0); st != 2 {
		t.Errorf("sgx_mage_derive_measurement(NULL): %#x", st)
	}
}

// TestSHA256 checks the C SHA-256 against crypto/sha256 at every length
// around the block boundaries.
func TestSHA256(t *testing.T) {
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for n := range len(data) {
		if got, want := SHA256(data[:n]), sha256.Sum256(data[:n]); got != want {
			t.Fatalf("%d bytes: %x, want %x", n, got, want)
		}
	}
}

// FuzzDifferential feeds the same bytes to C and Go: the same accept or
// refuse decisions and the same measurements.
func FuzzDifferential(f *testing.F) {
	secs, _ := sections(f)
	for _, name := range []string{"g1 table", "g2 table"} {
		f.Add(secs[name])
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 8 {
		f.Add(randomTable(r, i%2 == 1))
	}
	f.Fuzz(func(t *testing.T, sec []byte) {
		same(t, "fuzz", cLines(sec, 4), goLines(sec, 4))
	})
}
