package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/magesgx/mage/internal/atomicfile"
)

// writeOutput writes a command's output file: "-" is standard output;
// anything else is written atomically (through links, straight into
// devices and FIFOs, creating missing folders). With replace false an
// existing regular file is refused.
func (e *env) writeOutput(name string, data []byte, perm fs.FileMode, replace bool) error {
	if name == "-" {
		_, err := e.stdout.Write(data)
		return err
	}
	if replace {
		return atomicfile.WriteFile(name, data, perm)
	}
	return atomicfile.WriteNew(name, data, perm)
}

// checkOutputs refuses a command line that would write over one of its own
// inputs (the same path, or the same file through another name or a link),
// or write two outputs to one file. "-" and empty names are ignored. Each
// name is looked up once.
func checkOutputs(inputs, outputs []string) error {
	seen := map[fileKey]string{} // key -> first name, marked with its role
	role := map[fileKey]string{}
	for i, p := range append(append([]string{}, inputs...), outputs...) {
		if p == "" || p == "-" {
			continue
		}
		r := "input"
		if i >= len(inputs) {
			r = "output"
		}
		k := keyOf(p)
		if first, ok := seen[k]; ok && r == "output" {
			if role[k] == "input" {
				return usagef("output %s is also an input (%s): refusing to overwrite an input", p, first)
			}
			return usagef("two outputs are the same file: %s and %s", first, p)
		}
		if _, ok := seen[k]; !ok {
			seen[k], role[k] = p, r
		}
	}
	return nil
}

// fileKey identifies a file: by device and inode if it exists, else by its
// cleaned absolute path after links.
type fileKey struct {
	dev, ino uint64
	path     string
}

func keyOf(p string) fileKey {
	if fi, err := os.Stat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return fileKey{dev: uint64(st.Dev), ino: st.Ino}
		}
	}
	return fileKey{path: canonical(p)}
}

func canonical(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	} else if !errors.Is(err, fs.ErrNotExist) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// describeExists is the error for an existing output without -force.
func describeExists(p string) error {
	return fmt.Errorf("%s: %w (use --force to overwrite)", p, atomicfile.ErrExists)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
