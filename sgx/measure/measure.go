// Package measure computes SGX enclave measurements (MRENCLAVE) the way the
// processor does: a SHA-256 over a log of 64-byte records that ECREATE, EADD
// and EEXTEND append while an enclave is built.
//
// The intermediate SHA-256 state after any prefix of the log is a first-class
// value (State): it can be exported after some records, stored, and resumed
// later to finish the measurement. MAGE stores exactly such states in the
// .sgx_mage table of every group member.
//
// All integers in the records are little-endian:
//
//	ECREATE  "ECREATE\0" | u32 SSA frame size (pages) | u64 enclave size | 44 zero bytes
//	EADD     "EADD\0\0\0\0" | u64 page offset | 48 bytes of SECINFO (u64 flags, zeros)
//	EEXTEND  "EEXTEND\0" | u64 chunk offset | 48 zero bytes, then the 256-byte chunk
package measure

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Sizes fixed by the architecture.
const (
	PageSize   = 4096 // bytes in an enclave page
	ChunkSize  = 256  // bytes measured by one EEXTEND
	RecordSize = 64   // bytes in one measurement record (one SHA-256 block)
)

// SECINFO flag bits (the u64 at the start of SECINFO).
const (
	SecinfoR   = 0x1   // readable
	SecinfoW   = 0x2   // writable
	SecinfoX   = 0x4   // executable
	SecinfoTCS = 0x100 // page type TCS (PT_TCS = 1, bits 8..15)
	SecinfoREG = 0x200 // page type REG (PT_REG = 2, bits 8..15)
)

// State is the SHA-256 intermediate state after hashing Size bytes of the
// measurement log. Size is always a multiple of 64 (whole records), so no
// partial block is pending.
type State struct {
	H    [8]uint32 // the SHA-256 chaining words H0..H7
	Size uint64    // bytes hashed so far
}

// Blocks returns the number of 64-byte blocks hashed so far.
func (s State) Blocks() uint64 { return s.Size / RecordSize }

// Hash is a running enclave measurement. The zero value is not usable; call
// New or Resume.
type Hash struct {
	h   hash.Hash
	rec [RecordSize + ChunkSize]byte // scratch for one record and its chunk
	log []byte                       // scratch for a page's EEXTEND records; see Batched
}

// pageExtendSize is the length of the EEXTEND part of a measured page's
// log: 16 records, each followed by its 256-byte chunk.
const pageExtendSize = PageSize / ChunkSize * (RecordSize + ChunkSize)

// Batched makes AddPage lay out a page's 16 EEXTEND records and chunks in a
// scratch buffer and hash them in one call. It pays off when one Hash
// measures many pages or is reused with Reset (derivation), at the cost of
// a 5 KiB buffer.
func (m *Hash) Batched() *Hash {
	if m.log == nil {
		m.log = make([]byte, pageExtendSize)
	}
	return m
}

// New starts a measurement log.
func New() *Hash {
	return &Hash{h: sha256.New()}
}

// marshaled state of crypto/sha256: magic, H0..H7 (big-endian), the pending
// block, the length (big-endian). This layout has been stable since Go 1.11
// and is checked by the package tests.
const (
	sha256Magic      = "sha\x03"
	sha256MarshalLen = len(sha256Magic) + 8*4 + sha256.BlockSize + 8
)

// ErrBadState reports a State that cannot be resumed.
var ErrBadState = errors.New("measure: invalid intermediate state")

// Resume continues a measurement log from an intermediate state.
func Resume(s State) (*Hash, error) {
	m := New()
	if err := m.Reset(s); err != nil {
		return nil, err
	}
	return m, nil
}

// Reset discards the running log and continues from the intermediate state
// s instead, reusing m's memory.
func (m *Hash) Reset(s State) error {
	if s.Size%RecordSize != 0 {
		return fmt.Errorf("%w: size %d is not a multiple of %d", ErrBadState, s.Size, RecordSize)
	}
	// The scratch record buffer is large enough for the encoding, which
	// saves an allocation per derivation.
	b := append(m.rec[:0], sha256Magic...)
	for _, w := range s.H {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	n := len(b)
	b = b[:n+sha256.BlockSize]
	clear(b[n:])
	b = binary.BigEndian.AppendUint64(b, s.Size)
	if err := m.h.(interface{ UnmarshalBinary([]byte) error }).UnmarshalBinary(b); err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	return nil
}

// State returns the intermediate state after every record so far.
func (m *Hash) State() State {
	b, err := m.h.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil || len(b) != sha256MarshalLen || string(b[:4]) != sha256Magic {
		// Cannot happen with crypto/sha256; the tests pin the layout.
		panic("measure: unexpected crypto/sha256 state encoding")
	}
	var s State
	for i := range s.H {
		s.H[i] = binary.BigEndian.Uint32(b[4+4*i:])
	}
	s.Size = binary.BigEndian.Uint64(b[len(b)-8:])
	return s
}

// Size returns the number of bytes hashed so far.
func (m *Hash) Size() uint64 { return m.State().Size }

// Sum returns the measurement of the log so far (MRENCLAVE once the log is
// complete). It does not change the running state.
func (m *Hash) Sum() [32]byte {
	// Sum into the heap-resident scratch buffer: a local array would escape
	// through the interface call and cost an allocation.
	return [32]byte(m.h.Sum(m.rec[:0]))
}

func (m *Hash) record(tag string, a uint64, b []byte) {
	r := m.rec[:RecordSize]
	clear(r)
	copy(r[:8], tag)
	binary.LittleEndian.PutUint64(r[8:], a)
	copy(r[16:], b)
	m.h.Write(r)
}

// ECreate appends the ECREATE record: SSA frame size in pages and the enclave
// size in bytes.
func (m *Hash) ECreate(ssaFrameSize uint32, enclaveSize uint64) {
	r := m.rec[:RecordSize]
	clear(r)
	copy(r[:8], "ECREATE\x00")
	binary.LittleEndian.PutUint32(r[8:], ssaFrameSize)
	binary.LittleEndian.PutUint64(r[12:], enclaveSize)
	m.h.Write(r)
}

// EAdd appends the EADD record of the page at offset (from the enclave base)
// with the given SECINFO flags.
func (m *Hash) EAdd(offset, secinfoFlags uint64) {
	var f [8]byte
	binary.LittleEndian.PutUint64(f[:], secinfoFlags)
	m.record("EADD\x00\x00\x00\x00", offset, f[:])
}

// EAddRange appends the EADD records of count consecutive pages starting at
// offset, all with the same SECINFO flags and none measured (EEXTEND): the
// same bytes as count calls of EAdd, hashed in large batches.
func (m *Hash) EAddRange(offset, count, secinfoFlags uint64) {
	const batch = 64
	buf := make([]byte, batch*RecordSize)
	for i := range batch {
		r := buf[i*RecordSize:]
		copy(r, "EADD\x00\x00\x00\x00")
		binary.LittleEndian.PutUint64(r[16:], secinfoFlags)
	}
	for count > 0 {
		n := min(count, batch)
		for i := range n {
			binary.LittleEndian.PutUint64(buf[i*RecordSize+8:], offset+i*PageSize)
		}
		m.h.Write(buf[:n*RecordSize])
		offset += n * PageSize
		count -= n
	}
}

// EExtend appends the EEXTEND record of the 256-byte chunk at offset, then the
// chunk itself. chunk must be exactly ChunkSize bytes.
func (m *Hash) EExtend(offset uint64, chunk []byte) {
	if len(chunk) != ChunkSize {
		panic(fmt.Sprintf("measure: EEXTEND chunk of %d bytes, want %d", len(chunk), ChunkSize))
	}
	// One write of record and chunk together: the same bytes as two writes,
	// with half the calls into sha256.
	r := m.rec[:]
	clear(r[:RecordSize])
	copy(r, "EEXTEND\x00")
	binary.LittleEndian.PutUint64(r[8:], offset)
	copy(r[RecordSize:], chunk)
	m.h.Write(r)
}

// AddPage appends the records of one page: EADD, then, if page is not nil, an
// EEXTEND for each of its 16 chunks. page must be nil (the page is added but
// its content is not measured, as the SDK does for heap pages) or exactly
// PageSize bytes.
func (m *Hash) AddPage(offset, secinfoFlags uint64, page []byte) {
	m.EAdd(offset, secinfoFlags)
	if page == nil {
		return
	}
	if len(page) != PageSize {
		panic(fmt.Sprintf("measure: page of %d bytes, want %d", len(page), PageSize))
	}
	if m.log == nil {
		for c := 0; c < PageSize; c += ChunkSize {
			m.EExtend(offset+uint64(c), page[c:c+ChunkSize])
		}
		return
	}
	b := m.log
	for c := 0; c < PageSize; c += ChunkSize {
		r := b[c/ChunkSize*(RecordSize+ChunkSize):]
		clear(r[:RecordSize])
		copy(r, "EEXTEND\x00")
		binary.LittleEndian.PutUint64(r[8:], offset+uint64(c))
		copy(r[RecordSize:RecordSize+ChunkSize], page[c:c+ChunkSize])
	}
	m.h.Write(b)
}

var _ [len(Hash{}.rec) - sha256MarshalLen]byte // rec must hold a marshaled state
