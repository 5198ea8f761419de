package mage

import (
	"encoding/hex"
	"fmt"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// On stock Gramine the manifest is measured first, so a Gramine member
// carries the group's table at the end of its manifest, as its last line
//
//	loader.env.MAGE_TABLE = "<hex payload>"
//
// starting on a page boundary after the member's own K pages. Its entry
// is the SHA-256 state after ECREATE and those K pages (bytes hashed 64 +
// 5184·K), and the offset of the table's first page. A verifier finishes
// a member's MRENCLAVE from the entry over the table pages (the table
// line, a NUL, zeros) and then replays the fixed, public suffix that
// Gramine's loader measures after the manifest (SSA, TCS, TLS, stacks,
// libpal, free heap), which depends only on the group's constants and the
// manifest's length, never on the table. See docs/table-format.md.

// GramineTablePrefix starts the table line of a Gramine member's manifest.
const GramineTablePrefix = `loader.env.MAGE_TABLE = "`

// GramineConstants are what every Gramine member of a group shares and a
// verifier needs to replay the suffix: the libpal.so they run with, the
// thread count and EDMM.
type GramineConstants struct {
	Libpal     *gramine.Libpal
	MaxThreads int
	EDMM       bool
}

// GramineTableText is the table line for a payload, as the last line of
// every Gramine member's manifest.
func GramineTableText(payload []byte) []byte {
	b := make([]byte, 0, len(GramineTablePrefix)+2*len(payload)+2)
	b = append(b, GramineTablePrefix...)
	b = hex.AppendEncode(b, payload)
	return append(b, '"', '\n')
}

// ParseGramineEntries decodes the payload of a group of Gramine members:
// its 48-byte entries, in member order.
func ParseGramineEntries(payload []byte) ([]Entry, error) {
	if len(payload) == 0 || len(payload)%EntrySize != 0 {
		return nil, fmt.Errorf("%w: Gramine payload of %d bytes is not a whole number of %d-byte entries", ErrTable, len(payload), EntrySize)
	}
	if len(payload)/EntrySize > MaxGramineMembers {
		return nil, fmt.Errorf("%w: Gramine payload of %d entries, more than %d", ErrTable, len(payload)/EntrySize, MaxGramineMembers)
	}
	return ParseEntries(payload)
}

// MaxGramineMembers bounds a Gramine group's table: its text is measured
// into every derivation, as a classic section is (members x pages).
const MaxGramineMembers = 1365

// GramineDeriver derives Gramine members' MRENCLAVEs from a payload.
type GramineDeriver struct {
	entries []Entry
	text    []byte // the table line, then the NUL and zeros to whole pages
	lineLen uint64 // bytes of the table line
	c       GramineConstants
	h       *measure.Hash
}

// NewGramineDeriver parses a payload for repeated derivations.
func NewGramineDeriver(payload []byte, c GramineConstants) (*GramineDeriver, error) {
	if c.Libpal == nil || c.MaxThreads < 1 {
		return nil, fmt.Errorf("%w: Gramine constants need the libpal and a thread count", ErrTable)
	}
	es, err := ParseGramineEntries(payload)
	if err != nil {
		return nil, err
	}
	line := GramineTableText(payload)
	text := make([]byte, (len(line)+1+PageSize-1)/PageSize*PageSize)
	copy(text, line)
	return &GramineDeriver{entries: es, text: text, lineLen: uint64(len(line)), c: c, h: measure.New().Batched()}, nil
}

// Len returns the number of members.
func (d *GramineDeriver) Len() int { return len(d.entries) }

// Derive returns member i's MRENCLAVE: its entry's state, then the table
// pages, then the suffix replayed from the constants. It allocates nothing
// in proportion to the suffix.
func (d *GramineDeriver) Derive(i int) (sgx.Measurement, error) {
	if i < 0 || i >= len(d.entries) {
		return sgx.Measurement{}, fmt.Errorf("%w: member %d out of range [0, %d)", ErrTable, i, len(d.entries))
	}
	return d.finish(i, d.entries[i])
}

// finish derives a Gramine member's MRENCLAVE from its entry (entry i, for
// errors).
func (d *GramineDeriver) finish(i int, e Entry) (sgx.Measurement, error) {
	pages := e.State.Size / measure.RecordSize
	const pageRecords = 5184 / measure.RecordSize
	if pages == 0 || (pages-1)%pageRecords != 0 {
		return sgx.Measurement{}, fmt.Errorf("%w: entry %d: %d bytes hashed is not ECREATE plus whole manifest pages", ErrTable, i, e.State.Size)
	}
	k := (pages - 1) / pageRecords
	size := e.Offset + uint64(len(d.text))
	limit := uint64(gramine.MaxEnclaveSize)
	if !d.c.EDMM {
		limit = gramine.MaxEnclaveSizeNoEM // every free page is hashed
	}
	if size < e.Offset || size > limit {
		return sgx.Measurement{}, fmt.Errorf("%w: entry %d: enclave of %#x bytes is over the %#x a Gramine member may have", ErrTable, i, size, limit)
	}
	manifestLen := k*PageSize + d.lineLen
	l, err := gramine.NewLayout(size, d.c.MaxThreads, d.c.EDMM, manifestLen, d.c.Libpal.Span)
	if err != nil {
		return sgx.Measurement{}, fmt.Errorf("entry %d: %w", i, err)
	}
	if size&(size-1) != 0 || l.Manifest+k*PageSize != e.Offset {
		return sgx.Measurement{}, fmt.Errorf("%w: entry %d: table offset %#x does not end a power-of-two enclave after %d manifest pages", ErrTable, i, e.Offset, k)
	}
	if err := d.h.Reset(e.State); err != nil {
		return sgx.Measurement{}, fmt.Errorf("entry %d: %w", i, err)
	}
	for p := 0; p < len(d.text); p += PageSize {
		d.h.AddPage(e.Offset+uint64(p), SecinfoFlags, d.text[p:p+PageSize])
	}
	l.MeasureSuffix(d.h, d.c.Libpal)
	return d.h.Sum(), nil
}

// DeriveGramine returns member i's MRENCLAVE from a Gramine group's
// payload and constants.
func DeriveGramine(payload []byte, i int, c GramineConstants) (sgx.Measurement, error) {
	d, err := NewGramineDeriver(payload, c)
	if err != nil {
		return sgx.Measurement{}, err
	}
	return d.Derive(i)
}
