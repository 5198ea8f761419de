package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"testing"
)

// TestResumeMAGEVector resumes from the intermediate state that the reference
// tool stored for member 0 of group g1 and finishes it over the group's table
// page; the result must be that member's real MRENCLAVE.
func TestResumeMAGEVector(t *testing.T) {
	table, err := os.ReadFile("../../testdata/sgxsdk/mage/g1.sgx_mage_table.bin")
	if err != nil {
		t.Fatal(err)
	}
	entry := table[8 : 8+48]
	var s State
	s.Size = binary.LittleEndian.Uint64(entry[0:])
	off := binary.LittleEndian.Uint64(entry[8:])
	for i := range s.H {
		s.H[i] = binary.LittleEndian.Uint32(entry[16+4*i:])
	}
	if s.Size != 133760 || off != 0x3000 || s.H[0] != 0xe4c689f8 {
		t.Fatalf("entry decoded as %+v offset %#x", s, off)
	}
	h, err := Resume(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.State(); got != s {
		t.Fatalf("State after Resume = %+v, want %+v", got, s)
	}
	h.AddPage(off, SecinfoREG|SecinfoR, table)
	got := h.Sum()
	want, _ := hex.DecodeString("f12017a9b03c6addcee67234856390644fe2faa42402162a1bc0473a4393428a")
	if !bytes.Equal(got[:], want) {
		t.Fatalf("MRENCLAVE = %x, want %x", got, want)
	}
	if h.Size() != s.Size+64*(1+16*5) {
		t.Fatalf("size %d", h.Size())
	}
}

// TestStateRoundTrip checks that exporting and resuming at any record boundary
// gives the same final hash as one uninterrupted pass, and that the state
// words agree with an independent SHA-256 over the same bytes.
func TestStateRoundTrip(t *testing.T) {
	page := bytes.Repeat([]byte{0xa5, 0x5a, 0x01}, PageSize/3+1)[:PageSize]
	full := New()
	full.ECreate(1, 0x200000)
	full.AddPage(0, SecinfoREG|SecinfoR|SecinfoX, page)
	mid := full.State()
	full.AddPage(0x1000, SecinfoREG|SecinfoR|SecinfoW, nil)
	full.AddPage(0x2000, SecinfoTCS, page)
	want := full.Sum()

	r, err := Resume(mid)
	if err != nil {
		t.Fatal(err)
	}
	r.AddPage(0x1000, SecinfoREG|SecinfoR|SecinfoW, nil)
	r.AddPage(0x2000, SecinfoTCS, page)
	if got := r.Sum(); got != want {
		t.Fatalf("resumed %x, want %x", got, want)
	}
	// Sum must not disturb the running state.
	if full.Sum() != want {
		t.Fatal("Sum changed the state")
	}

	// Independent check of the record encoding.
	var log []byte
	rec := make([]byte, 64)
	copy(rec, "ECREATE\x00")
	binary.LittleEndian.PutUint32(rec[8:], 1)
	binary.LittleEndian.PutUint64(rec[12:], 0x200000)
	log = append(log, rec...)
	add := func(off, flags uint64, p []byte) {
		rec := make([]byte, 64)
		copy(rec, "EADD")
		binary.LittleEndian.PutUint64(rec[8:], off)
		binary.LittleEndian.PutUint64(rec[16:], flags)
		log = append(log, rec...)
		for c := 0; p != nil && c < PageSize; c += ChunkSize {
			rec := make([]byte, 64)
			copy(rec, "EEXTEND")
			binary.LittleEndian.PutUint64(rec[8:], off+uint64(c))
			log = append(log, rec...)
			log = append(log, p[c:c+ChunkSize]...)
		}
	}
	add(0, 0x205, page)
	add(0x1000, 0x203, nil)
	add(0x2000, 0x100, page)
	if got := sha256.Sum256(log); got != want {
		t.Fatalf("independent log hash %x, want %x", got, want)
	}
	if full.Size() != uint64(len(log)) {
		t.Fatalf("Size %d, want %d", full.Size(), len(log))
	}
}

func TestResumeRejectsPartialBlock(t *testing.T) {
	if _, err := Resume(State{Size: 65}); err == nil {
		t.Fatal("Resume accepted a size that is not a multiple of 64")
	}
}

func TestEAddRange(t *testing.T) {
	a, b := New(), New()
	for i := range uint64(200) {
		a.EAdd(0x5000+i*PageSize, 0x203)
	}
	b.EAddRange(0x5000, 200, 0x203)
	if a.Sum() != b.Sum() || a.Size() != b.Size() {
		t.Fatal("EAddRange differs from EAdd")
	}
}
