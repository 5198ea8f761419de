package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
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
	if err := WriteFile(filepath.Join(d, "no", "such", "dir"), nil, 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}
