package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular is returned by WritePrivate when the destination exists
// and is not a regular file (a symbolic link, FIFO, device or directory).
var ErrNotRegular = errors.New("not a regular file")

// WritePrivate writes secret data, such as a private key, to name: only
// ever into a new regular file of mode 0600 that nobody else could have
// opened. The data goes to a temporary file created with O_EXCL and mode
// 0600, is synced, and is then linked to name, which fails if name exists
// (so a file created meanwhile is never replaced). With replace, an
// existing regular file is replaced by a rename instead. A destination
// that is a symbolic link, FIFO, device or directory is refused whatever
// replace says: a secret is never written through a link or into a file
// someone else may hold open. Missing parent directories are created with
// mode 0700.
func WritePrivate(name string, data []byte, replace bool) error {
	fi, err := os.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("%s: %w", name, cause(err))
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: %w (%s): a private key is written only to a new regular file", name, ErrNotRegular, kindOf(fi.Mode()))
	case !replace:
		return fmt.Errorf("%s: %w", name, ErrExists)
	}
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", name, cause(err))
	}
	tmp, err := writeTemp(name, data, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", name, cause(err))
	}
	tname := tmp.Name()
	defer os.Remove(tname)
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", name, cause(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, cause(err))
	}
	if fi == nil {
		// link(2) never replaces: a file that appeared since the check
		// (or a link planted in its place) makes it fail.
		if err := os.Link(tname, name); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", name, ErrExists)
			}
			return fmt.Errorf("%s: %w", name, cause(err))
		}
	} else {
		// rename(2) replaces the directory entry itself, never what a
		// link planted meanwhile points to.
		if err := os.Rename(tname, name); err != nil {
			return fmt.Errorf("%s: %w", name, cause(err))
		}
	}
	return syncDir(dir)
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
