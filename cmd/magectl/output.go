package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
// or write two outputs to one file. "-" and empty names are ignored.
func checkOutputs(inputs, outputs []string) error {
	type named struct{ name, role string }
	var all []named
	for _, p := range inputs {
		all = append(all, named{p, "input"})
	}
	for _, p := range outputs {
		all = append(all, named{p, "output"})
	}
	for i, o := range all {
		if o.role != "output" || o.name == "" || o.name == "-" {
			continue
		}
		for _, x := range all[:i] {
			if x.name == "" || x.name == "-" || !samePath(o.name, x.name) {
				continue
			}
			if x.role == "input" {
				return usagef("output %s is also an input (%s): refusing to overwrite an input", o.name, x.name)
			}
			return usagef("two outputs are the same file: %s and %s", x.name, o.name)
		}
	}
	return nil
}

// samePath reports whether two names lead to the same file: the same
// existing file, or the same cleaned absolute path after links.
func samePath(a, b string) bool {
	ia, errA := os.Stat(a)
	ib, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(ia, ib)
	}
	return canonical(a) == canonical(b)
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
	return fmt.Errorf("%s: %w (use -force to overwrite)", p, atomicfile.ErrExists)
}
