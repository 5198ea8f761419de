package mage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// Finish completes a member's measurement from its entry: it resumes the
// state, measures every page of section at the entry's offset, and returns
// the final MRENCLAVE. section is the content of the .sgx_mage section (in a
// group, identical in every member).
func Finish(e Entry, section []byte) (sgx.Measurement, error) {
	if err := checkSectionSize(len(section)); err != nil {
		return sgx.Measurement{}, err
	}
	return finish(measure.New(), e, section)
}

// finish resets h to the entry's state, measures the section's pages at
// the entry's offset, and returns the final measurement.
func finish(h *measure.Hash, e Entry, section []byte) (sgx.Measurement, error) {
	if err := h.Reset(e.State); err != nil {
		return sgx.Measurement{}, err
	}
	for p := 0; p < len(section); p += PageSize {
		h.AddPage(e.Offset+uint64(p), SecinfoFlags, section[p:p+PageSize])
	}
	return h.Sum(), nil
}

// Deriver derives members' measurements from one section, reusing its
// parsed table and hashing state between calls. A Deriver is not safe for
// concurrent use; make one per goroutine.
type Deriver struct {
	section []byte
	table   *Table
	h       *measure.Hash
}

// NewDeriver parses section once for repeated derivations.
func NewDeriver(section []byte) (*Deriver, error) {
	t, err := ParseTable(section)
	if err != nil {
		return nil, err
	}
	return &Deriver{section: section, table: t, h: measure.New().Batched()}, nil
}

// Len returns the number of members in the table.
func (d *Deriver) Len() int { return len(d.table.Entries) }

// Derive returns the MRENCLAVE of member i.
func (d *Deriver) Derive(i int) (sgx.Measurement, error) {
	if i < 0 || i >= len(d.table.Entries) {
		return sgx.Measurement{}, fmt.Errorf("%w: member %d out of range [0, %d)", ErrTable, i, len(d.table.Entries))
	}
	return finish(d.h, d.table.Entries[i], d.section)
}

// Derive returns the MRENCLAVE of member i of the group whose .sgx_mage
// section is section. It decodes only the count and entry i, so deriving one
// member costs about one SHA-256 over the section's records; ParseTable
// checks a whole table.
func Derive(section []byte, i int) (sgx.Measurement, error) {
	if err := checkSectionSize(len(section)); err != nil {
		return sgx.Measurement{}, err
	}
	n := binary.LittleEndian.Uint64(section)
	if c := uint64(Capacity(len(section))); n > c {
		return sgx.Measurement{}, fmt.Errorf("%w: count %d exceeds the capacity %d of a %d-byte section", ErrTable, n, c, len(section))
	}
	if i < 0 || uint64(i) >= n {
		return sgx.Measurement{}, fmt.Errorf("%w: member %d out of range [0, %d)", ErrTable, i, n)
	}
	off := headerSize + i*EntrySize
	e, err := ParseEntry(section[off : off+EntrySize])
	if err != nil {
		return sgx.Measurement{}, fmt.Errorf("entry %d: %w", i, err)
	}
	return Finish(e, section)
}

// DeriveAll returns the MRENCLAVE of every member, in table order, using all
// available cores.
func DeriveAll(section []byte) ([]sgx.Measurement, error) {
	return DeriveAllContext(context.Background(), section, 0)
}

// DeriveAllContext is DeriveAll with cancellation and a bound on the number
// of goroutines (workers <= 0 means GOMAXPROCS).
func DeriveAllContext(ctx context.Context, section []byte, workers int) ([]sgx.Measurement, error) {
	t, err := ParseTable(section)
	if err != nil {
		return nil, err
	}
	n := len(t.Entries)
	out := make([]sgx.Measurement, n)
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	if workers <= 1 {
		d := &Deriver{section: section, table: t, h: measure.New().Batched()}
		for i := range t.Entries {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if out[i], err = d.Derive(i); err != nil {
				return nil, fmt.Errorf("member %d: %w", i, err)
			}
		}
		return out, nil
	}
	// Static striping: worker w derives members w, w+workers, ... Each
	// derivation is a few microseconds, too short to hand out one by one.
	var (
		wg   sync.WaitGroup
		errs = make([]error, n)
	)
	for w := range workers {
		wg.Go(func() {
			d := &Deriver{section: section, table: t, h: measure.New().Batched()}
			for i := w; i < n; i += workers {
				if ctx.Err() != nil {
					return
				}
				out[i], errs[i] = d.Derive(i)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
	}
	return out, nil
}

// Group is what a verifier learns from one member's table: every member's
// MRENCLAVE, and which one is the member itself.
type Group struct {
	Self         int               // index of the member whose table this is
	Measurements []sgx.Measurement // MRENCLAVE of every member, in table order
}

// Index returns the member index whose MRENCLAVE is m, or -1.
func (g *Group) Index(m sgx.Measurement) int {
	for i, x := range g.Measurements {
		if x == m {
			return i
		}
	}
	return -1
}

// ErrUntrustedTable is returned by Trust when the table does not belong to
// the trusted measurement.
var ErrUntrustedTable = errors.New("mage: table does not derive the trusted MRENCLAVE")

// Trust extends trust from one member to its whole group. Given the
// MRENCLAVE of a member that the caller already trusts (for example from an
// attestation) and that member's .sgx_mage section, Trust checks that the
// table derives the trusted measurement for one of its entries, which proves
// the table is the one measured into that member and so is authentic, and
// returns the group's measurements.
//
// Trust derives the entries in table order and looks for the trusted
// measurement as it goes; it stops when ctx is done. The work is bounded
// by the section size (MaxSectionSize): at most members x pages
// page-hashes.
func Trust(ctx context.Context, trusted sgx.Measurement, section []byte) (*Group, error) {
	d, err := NewDeriver(section)
	if err != nil {
		return nil, err
	}
	g := &Group{Self: -1, Measurements: make([]sgx.Measurement, d.Len())}
	for i := range g.Measurements {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if g.Measurements[i], err = d.Derive(i); err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		if g.Self < 0 && g.Measurements[i] == trusted {
			g.Self = i
		}
	}
	if g.Self < 0 {
		return nil, fmt.Errorf("%w %s (none of its %d entries matches)", ErrUntrustedTable, trusted, d.Len())
	}
	return g, nil
}
