// Package atomicfile writes output files so that readers never see a
// partial file and a failed write leaves nothing behind: the data goes to a
// temporary file in the destination's directory, is synced, renamed over
// the destination, and the directory is synced.
//
// Only regular files are replaced that way. A symbolic link is written
// through to its target (the link stays), and a destination that is not a
// regular file, such as /dev/stdout, a terminal or a FIFO, is written
// straight into. Missing parent directories are created. Errors name the
// destination, never the temporary file.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// ErrExists is returned by WriteNew when the destination already exists.
var ErrExists = errors.New("file exists")

// maxLinks bounds the symbolic links followed, as the kernel does (ELOOP).
const maxLinks = 40

// WriteFile writes data to name, created with mode perm if it is new.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	return write(name, data, perm, true)
}

// WriteNew is WriteFile that refuses to replace an existing regular file
// (directly or through a link), returning an error wrapping ErrExists.
func WriteNew(name string, data []byte, perm fs.FileMode) error {
	return write(name, data, perm, false)
}

// resolve follows symbolic links from name to the path they lead to, which
// may not exist yet (a dangling link is written through, creating its
// target). It returns that path and its file info (nil if it does not
// exist).
func resolve(name string) (string, fs.FileInfo, error) {
	p := name
	for range maxLinks {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, fi, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", nil, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return "", nil, errors.New("too many levels of symbolic links")
}

// cause drops the path from an *fs.PathError or *os.LinkError, whose
// path may be the temporary file's.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func write(name string, data []byte, perm fs.FileMode, replace bool) error {
	var b Batch
	if err := b.Stage(name, data, perm, replace); err != nil {
		return err
	}
	return b.Commit()
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // nothing to sync through (no read permission): the rename stands
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("syncing directory %s: %w", dir, cause(err))
	}
	return nil
}

// Batch writes many files durably and together: Stage writes each one to a
// synced temporary file beside its destination (safe to call from many
// goroutines, so the syncs overlap), and Commit renames them all into
// place and then syncs each directory once. Nothing appears at any
// destination before Commit; Abort (or a failed Commit's remaining files)
// leaves no temporary file behind. Destinations that are not regular files
// (devices, FIFOs) are written at Commit, in Stage order.
type Batch struct {
	mu     sync.Mutex
	staged []staged
	syncs  sync.WaitGroup
	sem    chan struct{} // bounds the syncs in flight
	errMu  sync.Mutex
	err    error // the first failed sync
}

// maxSyncs bounds the temporary files being synced at once.
const maxSyncs = 32

type staged struct {
	name, dest, tmp string
	replace         bool
	existed         bool   // dest existed at Stage (so a failed Commit cannot undo it)
	direct          []byte // for a non-regular destination
}

// Stage prepares name to receive data (mode perm if new). With replace
// false an existing regular file is refused (ErrExists), as by WriteNew.
func (b *Batch) Stage(name string, data []byte, perm fs.FileMode, replace bool) error {
	fail := func(err error) error { return fmt.Errorf("writing %s: %w", name, cause(err)) }
	dest, fi, err := resolve(name)
	if err != nil {
		return fail(err)
	}
	if !replace && fi != nil && (fi.Mode().IsRegular() || fi.IsDir()) {
		return fmt.Errorf("%s: %w (use --force to overwrite)", name, ErrExists)
	}
	if fi != nil && fi.IsDir() {
		return fmt.Errorf("writing %s: is a directory", name)
	}
	if fi != nil && !fi.Mode().IsRegular() {
		b.add(staged{name: name, dest: dest, direct: data})
		return nil
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := writeTemp(dest, data, perm)
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	b.add(staged{name: name, dest: dest, tmp: tmp, replace: replace, existed: fi != nil})
	// Sync in the background, so the caller goes on computing while the
	// storage works; Commit waits for every sync.
	b.mu.Lock()
	if b.sem == nil {
		b.sem = make(chan struct{}, maxSyncs)
	}
	sem := b.sem
	b.mu.Unlock()
	sem <- struct{}{}
	b.syncs.Go(func() {
		defer func() { <-sem }()
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.errMu.Lock()
			if b.err == nil {
				b.err = fail(err)
			}
			b.errMu.Unlock()
		}
	})
	return nil
}

// writeTemp writes data to a new temporary file (O_EXCL) of mode perm
// beside dest and returns it open, unsynced; on an error it leaves no
// file behind.
func writeTemp(dest string, data []byte, perm fs.FileMode) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp*")
	if err != nil {
		return nil, err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

func (b *Batch) add(s staged) {
	b.mu.Lock()
	b.staged = append(b.staged, s)
	b.mu.Unlock()
}

// Commit moves every staged file into place and syncs each directory once.
// Destinations that are not regular files (devices, FIFOs) are written
// first, since such a write cannot be taken back: if one fails, nothing
// has been moved. If moving a file fails, the files not yet moved are
// removed, and so are those this Commit created; a regular file that
// existed before and was already replaced stays replaced.
func (b *Batch) Commit() (err error) {
	b.syncs.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.cleanup()
	if b.err != nil {
		return b.err
	}
	for i := range b.staged {
		if s := &b.staged[i]; s.tmp == "" {
			if err := writeInto(s.dest, s.direct); err != nil {
				return fmt.Errorf("writing %s: %w", s.name, cause(err))
			}
		}
	}
	var created []string
	defer func() {
		if err != nil {
			for _, p := range created {
				os.Remove(p)
			}
		}
	}()
	dirs := map[string]bool{}
	for i := range b.staged {
		s := &b.staged[i]
		if s.tmp == "" {
			continue
		}
		if s.replace {
			if err := os.Rename(s.tmp, s.dest); err != nil {
				return fmt.Errorf("writing %s: %w", s.name, cause(err))
			}
		} else {
			err := os.Link(s.tmp, s.dest)
			os.Remove(s.tmp)
			if errors.Is(err, fs.ErrExist) {
				s.tmp = ""
				return fmt.Errorf("%s: %w (use --force to overwrite)", s.name, ErrExists)
			}
			if err != nil {
				s.tmp = ""
				return fmt.Errorf("writing %s: %w", s.name, cause(err))
			}
		}
		s.tmp = ""
		if !s.existed {
			created = append(created, s.dest)
		}
		dirs[filepath.Dir(s.dest)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes every staged temporary file.
func (b *Batch) Abort() {
	b.syncs.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanup()
}

func (b *Batch) cleanup() {
	for _, s := range b.staged {
		if s.tmp != "" {
			os.Remove(s.tmp)
		}
	}
	b.staged = nil
}

// writeInto writes data into an existing non-regular file.
func writeInto(dest string, data []byte) error {
	f, err := os.OpenFile(dest, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
