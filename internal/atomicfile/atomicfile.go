// Package atomicfile writes files so that readers never see a partial file:
// the data goes to a temporary file in the same directory, is synced, and is
// renamed over the destination.
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

// WriteFile atomically replaces name with data, created with mode perm.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	return write(name, data, perm, true)
}

// WriteNew is WriteFile that refuses to replace an existing file, returning
// an error wrapping ErrExists.
func WriteNew(name string, data []byte, perm fs.FileMode) error {
	return write(name, data, perm, false)
}

func write(name string, data []byte, perm fs.FileMode, replace bool) error {
	if !replace {
		if _, err := os.Lstat(name); err == nil {
			return fmt.Errorf("%s: %w (use -force to overwrite)", name, ErrExists)
		}
	}
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
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
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if !replace {
		// Link fails if name appeared meanwhile, unlike Rename.
		if err := os.Link(tmp, name); err != nil {
			os.Remove(tmp)
			ok = true
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w (use -force to overwrite)", name, ErrExists)
			}
			return fmt.Errorf("writing %s: %w", name, err)
		}
		os.Remove(tmp)
		ok = true
		return nil
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	ok = true
	return nil
}
