// Package mage implements MAGE (Mutual Attestation for a Group of Enclaves,
// Chen and Zhang, USENIX Security 2022): the .sgx_mage table that every member
// of a group carries, the derivation of every member's MRENCLAVE from that
// table, and the signing of a whole group.
//
// The table is byte-compatible with the paper's prototype
// (donnod/linux-sgx-mage): a u64 count, then count 48-byte entries, then
// zeros up to the section size (a multiple of 4096 bytes). An entry is
//
//	u64 size    bytes of the measurement log hashed before the section
//	u64 offset  RVA of the .sgx_mage section in that member
//	[8]u32      SHA-256 chaining words H0..H7, each little-endian
//
// The loader measures the section last, so member j's MRENCLAVE is the
// SHA-256 resumed from entry j over the EADD/EEXTEND records of the section's
// pages, whose content is the table itself.
package mage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/sgx/measure"
)

// Sizes of the table format.
const (
	EntrySize  = 48
	headerSize = 8
	PageSize   = measure.PageSize
	// SectionName is the name of the ELF section that holds the table.
	SectionName = ".sgx_mage"
	// MaxSectionSize bounds the .sgx_mage section accepted anywhere a table
	// is read or written: 16 pages, 1365 members. Deriving every member
	// costs members x pages page-hashes, quadratic in the section size, so
	// without a bound a hostile 4 MiB section would cost minutes; at this
	// bound DeriveAll hashes at most about 113 MB. The prototype supports
	// one page (85 members). Larger groups use Merkle tables.
	MaxSectionSize = 16 * PageSize
	// SecinfoFlags are the SECINFO flags the loader adds section pages with:
	// a regular, read-only page.
	SecinfoFlags = measure.SecinfoREG | measure.SecinfoR
)

// Capacity returns how many entries fit in a section of sectionSize bytes.
func Capacity(sectionSize int) int {
	if sectionSize < headerSize {
		return 0
	}
	return (sectionSize - headerSize) / EntrySize
}

// Entry is one member's record in the table: the measurement state just
// before the section, and where the section sits in that member.
type Entry struct {
	State  measure.State // intermediate SHA-256 state and bytes hashed
	Offset uint64        // RVA of the .sgx_mage section in the member
}

// MarshalBinary encodes the entry in its 48-byte layout.
func (e Entry) MarshalBinary() ([]byte, error) {
	return e.append(make([]byte, 0, EntrySize)), nil
}

func (e Entry) append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, e.State.Size)
	b = binary.LittleEndian.AppendUint64(b, e.Offset)
	for _, w := range e.State.H {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

// ParseEntry decodes a 48-byte entry and checks it is usable.
func ParseEntry(b []byte) (Entry, error) {
	if len(b) != EntrySize {
		return Entry{}, fmt.Errorf("%w: entry of %d bytes, want %d", ErrTable, len(b), EntrySize)
	}
	var e Entry
	e.State.Size = binary.LittleEndian.Uint64(b[0:])
	e.Offset = binary.LittleEndian.Uint64(b[8:])
	for i := range e.State.H {
		e.State.H[i] = binary.LittleEndian.Uint32(b[16+4*i:])
	}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (e Entry) check() error {
	if e.State.Size%measure.RecordSize != 0 {
		return fmt.Errorf("%w: entry size %d is not a multiple of %d bytes", ErrTable, e.State.Size, measure.RecordSize)
	}
	if e.State.Size == 0 {
		return fmt.Errorf("%w: entry size is 0 (no ECREATE hashed)", ErrTable)
	}
	if e.Offset%PageSize != 0 {
		return fmt.Errorf("%w: entry offset %#x is not page-aligned", ErrTable, e.Offset)
	}
	return nil
}

// ErrTable is wrapped by every table error.
var ErrTable = errors.New("mage: table")

// ErrNeedLibpal is wrapped when a table has Gramine members and no
// libpal.so was given to derive them with.
var ErrNeedLibpal = errors.New("no libpal.so given")

// ErrCapacity is wrapped when a group does not fit in the section.
var ErrCapacity = errors.New("mage: group does not fit in the section")

// Table is a decoded .sgx_mage table.
type Table struct {
	Entries []Entry
}

// ParseTable decodes a .sgx_mage section. The section must be a whole number
// of pages, the count must fit, and the bytes after the last entry must be
// zero (the table is measured, so stray bytes would be a different table).
func ParseTable(section []byte) (*Table, error) {
	if err := checkSectionSize(len(section)); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(section)
	if c := uint64(Capacity(len(section))); n > c {
		return nil, fmt.Errorf("%w: count %d exceeds the capacity %d of a %d-byte section", ErrTable, n, c, len(section))
	}
	t := &Table{Entries: make([]Entry, n)}
	for i := range t.Entries {
		off := headerSize + i*EntrySize
		e, err := ParseEntry(section[off : off+EntrySize])
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		t.Entries[i] = e
	}
	for i, c := range section[headerSize+int(n)*EntrySize:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero byte at offset %d after the last entry", ErrTable, headerSize+int(n)*EntrySize+i)
		}
	}
	return t, nil
}

// Marshal encodes the table into a section of sectionSize bytes.
func (t *Table) Marshal(sectionSize int) ([]byte, error) {
	if err := checkSectionSize(sectionSize); err != nil {
		return nil, err
	}
	if c := Capacity(sectionSize); len(t.Entries) > c {
		return nil, fmt.Errorf("%w: %d members, a %d-byte section holds at most %d", ErrCapacity, len(t.Entries), sectionSize, c)
	}
	b := make([]byte, headerSize, sectionSize)
	binary.LittleEndian.PutUint64(b, uint64(len(t.Entries)))
	for i, e := range t.Entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		b = e.append(b)
	}
	return b[:sectionSize], nil
}

// checkSectionSize checks that a section is a whole number of pages, at
// most MaxSectionSize.
func checkSectionSize(n int) error {
	switch {
	case n <= 0 || n%PageSize != 0:
		return fmt.Errorf("%w: section of %d bytes, want a non-zero multiple of %d", ErrTable, n, PageSize)
	case n > MaxSectionSize:
		return fmt.Errorf("%w: section of %d bytes exceeds the %d bytes (%d pages) a table may have: derivation cost grows with members x pages", ErrTable, n, MaxSectionSize, MaxSectionSize/PageSize)
	}
	return nil
}

// ParseEntries decodes a genmage output file: a concatenation of 48-byte
// entries, in genmage order.
func ParseEntries(b []byte) ([]Entry, error) {
	if len(b)%EntrySize != 0 {
		return nil, fmt.Errorf("%w: entries file of %d bytes is not a multiple of %d", ErrTable, len(b), EntrySize)
	}
	es := make([]Entry, 0, len(b)/EntrySize)
	for off := 0; off < len(b); off += EntrySize {
		e, err := ParseEntry(b[off : off+EntrySize])
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", off/EntrySize, err)
		}
		es = append(es, e)
	}
	return es, nil
}
