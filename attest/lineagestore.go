package attest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
)

// LineageStore keeps the newest lineage of an updatable group that a
// member has verified, so that a restart does not roll the member back to
// the epoch of the lineage proof its host hands it (see Config.LineageStore).
// What it holds is public and is checked again from the member's own
// measured table when it is loaded, so it needs no secrecy and cannot
// forge a table; it protects against rollback only as far as the storage
// itself does (in an enclave: sealed storage with a monotonic counter).
type LineageStore interface {
	// Load returns the stored lineage (mage.Lineage.Marshal), or nil and
	// no error when nothing is stored yet.
	Load() ([]byte, error)
	// Store replaces the stored lineage.
	Store(lineage []byte) error
}

// maxStoredLineage bounds what a store may return: 256 tables and their
// statements.
const maxStoredLineage = 12 + (mage.MaxEpoch+1)*160 + mage.MaxEpoch*64

// LineageFile returns a LineageStore that keeps the lineage in the file
// path, written atomically (temporary file, sync, rename) with mode 0600.
func LineageFile(path string) LineageStore { return lineageFile(path) }

type lineageFile string

func (f lineageFile) Load() ([]byte, error) {
	fh, err := os.Open(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b := make([]byte, maxStoredLineage+1)
	n, err := readFull(fh, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", string(f), err)
	}
	if n > maxStoredLineage {
		return nil, fmt.Errorf("%s: over %d bytes, more than any lineage", string(f), maxStoredLineage)
	}
	return b[:n], nil
}

func (f lineageFile) Store(b []byte) error { return atomicfile.WriteFile(string(f), b, 0o600) }

// readFull reads until b is full or the reader ends.
func readFull(r io.Reader, b []byte) (int, error) {
	n, err := io.ReadFull(r, b)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return n, err
}

// restoreLineage brings back what the store holds into the member's
// verifier, then stores the newest lineage the member knows.
func (m *Member) restoreLineage() error {
	st := m.cfg.LineageStore
	b, err := st.Load()
	if err != nil {
		return fmt.Errorf("%w: loading the lineage store: %w", ErrConfig, err)
	}
	if len(b) > maxStoredLineage {
		return fmt.Errorf("%w: the lineage store returned %d bytes, more than any lineage", ErrConfig, len(b))
	}
	if b != nil {
		l, err := mage.ParseLineage(b)
		if err != nil {
			return fmt.Errorf("%w: the lineage store: %w", ErrConfig, err)
		}
		if err := m.lineage.Restore(l); err != nil {
			return fmt.Errorf("%w: the lineage store holds a lineage this member cannot verify from its own table: %w", ErrConfig, err)
		}
	}
	return m.persistLineage()
}

// learn keeps the newer tables of a verified peer's lineage proof and
// persists them.
func (m *Member) learn(p *mage.LineageProof) error {
	learned, err := m.lineage.Learn(p)
	if err != nil || !learned {
		return err
	}
	return m.persistLineage()
}

// persistLineage stores the newest lineage the member knows, if it has a
// store. Stores are serialized, and each stores the newest lineage at its
// time, so a slow store never overwrites a newer one with an older.
func (m *Member) persistLineage() error {
	if m.cfg.LineageStore == nil {
		return nil
	}
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	l := m.lineage.Lineage()
	if e := uint32(len(l.Tables) - 1); m.stored != nil && *m.stored >= e {
		return nil
	}
	if err := m.cfg.LineageStore.Store(l.Marshal()); err != nil {
		return fmt.Errorf("attest: persisting the group's lineage: %w", err)
	}
	e := uint32(len(l.Tables) - 1)
	m.stored = &e
	return nil
}
