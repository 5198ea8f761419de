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
	fail := func(err error) error { return fmt.Errorf("writing %s: %w", name, cause(err)) }
	dest, fi, err := resolve(name)
	if err != nil {
		return fail(err)
	}
	if !replace && fi != nil && (fi.Mode().IsRegular() || fi.IsDir()) {
		return fmt.Errorf("%s: %w (use -force to overwrite)", name, ErrExists)
	}
	if fi != nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("writing %s: is a directory", name)
		}
		// A device, FIFO or socket: write into it.
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return fail(err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
		return nil
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp*")
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if !replace {
		// Link fails if the destination appeared meanwhile, unlike Rename.
		err := os.Link(tmp, dest)
		os.Remove(tmp)
		ok = true
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w (use -force to overwrite)", name, ErrExists)
		}
		if err != nil {
			return fail(err)
		}
	} else {
		if err := os.Rename(tmp, dest); err != nil {
			return fail(err)
		}
		ok = true
	}
	return syncDir(dir)
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
