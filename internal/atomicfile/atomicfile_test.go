package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "f")
	if err := WriteNew(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("two"), 0o600); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteNew over a file: %v", err)
	}
	if err := WriteFile(p, []byte("three"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "three" || st.Mode().Perm() != 0o644 {
		t.Fatalf("%q %v", b, st.Mode())
	}
	entries, _ := os.ReadDir(d)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestWriteThrough: links are written through to their target, devices and
// FIFOs are written into (never replaced by a regular file), missing
// folders are created, and no error names the temporary file. (Issue 9,
// items 14 and 15.)
func TestWriteThrough(t *testing.T) {
	d := t.TempDir()
	target := filepath.Join(d, "target")
	link := filepath.Join(d, "link")
	os.WriteFile(target, []byte("old"), 0o644)
	os.Symlink("target", link)
	if err := WriteFile(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced by a regular file")
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	// A dangling link creates its target.
	os.Symlink("later", filepath.Join(d, "dangling"))
	if err := WriteNew(filepath.Join(d, "dangling"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(d, "later")); string(b) != "x" {
		t.Errorf("dangling link's target holds %q", b)
	}
	// A link to an existing file is an existing file for WriteNew.
	if err := WriteNew(link, []byte("no"), 0o644); !errors.Is(err, ErrExists) {
		t.Errorf("WriteNew through a link to a file: %v", err)
	}

	// A device: /dev/null stays a device.
	if err := WriteFile("/dev/null", []byte("discarded"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}
	// A FIFO is written into.
	fifo := filepath.Join(d, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- string(b)
	}()
	if err := WriteNew(fifo, []byte("through the pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "through the pipe" {
		t.Errorf("FIFO read %q", s)
	}
	if fi, _ := os.Lstat(fifo); fi.Mode()&os.ModeNamedPipe == 0 {
		t.Error("the FIFO was replaced")
	}

	// Missing folders are created.
	deep := filepath.Join(d, "no", "such", "dir", "f")
	if err := WriteFile(deep, []byte("deep"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Errors name the destination, not the temporary file.
	ro := filepath.Join(d, "ro")
	os.Mkdir(ro, 0o500)
	if os.Getuid() != 0 {
		err := WriteFile(filepath.Join(ro, "out"), []byte("x"), 0o644)
		if err == nil || strings.Contains(err.Error(), ".tmp") || !strings.Contains(err.Error(), "out") {
			t.Errorf("error in a read-only folder: %v", err)
		}
	}
	err := WriteFile(filepath.Join(d, "target", "sub"), []byte("x"), 0o644) // parent is a file
	if err == nil || strings.Contains(err.Error(), ".tmp") {
		t.Errorf("error under a file: %v", err)
	}
	if err := WriteFile(d, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("writing over a directory: %v", err)
	}
}

// TestBatch: nothing appears before Commit; Commit moves every file into
// place; Abort and a refused file leave no temporary behind.
func TestBatch(t *testing.T) {
	d := t.TempDir()
	var b Batch
	names := []string{filepath.Join(d, "a"), filepath.Join(d, "sub", "b"), filepath.Join(d, "c")}
	for i, n := range names {
		if err := b.Stage(n, []byte{byte('0' + i)}, 0o644, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if _, err := os.Stat(n); err == nil {
			t.Fatalf("%s exists before Commit", n)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if got, _ := os.ReadFile(n); string(got) != string(rune('0'+i)) {
			t.Errorf("%s holds %q", n, got)
		}
	}
	// Without replace, an existing file is refused at Stage.
	var b2 Batch
	if err := b2.Stage(names[0], []byte("x"), 0o644, false); !errors.Is(err, ErrExists) {
		t.Errorf("Stage over an existing file: %v", err)
	}
	if err := b2.Stage(filepath.Join(d, "new"), []byte("x"), 0o644, true); err != nil {
		t.Fatal(err)
	}
	b2.Abort()
	entries, _ := os.ReadDir(d)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") || e.Name() == "new" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// A device is written at Commit.
	var b3 Batch
	if err := b3.Stage("/dev/null", []byte("x"), 0o644, true); err != nil {
		t.Fatal(err)
	}
	if err := b3.Commit(); err != nil {
		t.Fatal(err)
	}
}
