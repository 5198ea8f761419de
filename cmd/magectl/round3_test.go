package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/magesgx/mage/mage"
)

// TestCLISuccessorNeverOverwritesInputs (issue 18, hole 7): signing a
// successor never replaces the predecessor's manifest, lineage or proofs,
// with or without -force, whichever path names them.
func TestCLISuccessorNeverOverwritesInputs(t *testing.T) {
	d := t.TempDir()
	member := func(i int) string { return heapMember(d, i) }
	upd := filepath.Join(d, "upd.pem")
	mustRun(t, "keygen", "--update-key", "-out", upd, "-pubout", upd+".pub")
	v0 := filepath.Join(d, "v0")
	os.MkdirAll(v0, 0o755)
	g0 := filepath.Join(v0, "g.json")
	os.WriteFile(g0, []byte(`{"name": "rolling", "date": "20261205", "members": [`+member(0)+`,`+member(1)+`]}`), 0o644)
	mustRun(t, "group", "sign", "-q", "--table", "merkle", "--update-key", upd+".pub", g0)
	man0 := filepath.Join(v0, "g.manifest.json")
	m0, err := mage.LoadManifest(man0)
	if err != nil {
		t.Fatal(err)
	}
	lineage0 := filepath.Join(v0, "g.manifest.lineage")
	inputs := []string{man0, lineage0, m0.Members[0].Proof, m0.Members[1].Proof}
	snapshot := func() [][]byte {
		var out [][]byte
		for _, p := range inputs {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	before := snapshot()

	write := func(name, members string) string {
		p := filepath.Join(v0, name)
		os.WriteFile(p, []byte(`{"name": "rolling", "date": "20261205", "members": [`+members+`]}`), 0o644)
		return p
	}
	// Beside the predecessor, named so that its default manifest is the
	// predecessor's.
	beside := write("g.group.json", `{"name": "m0", "keep": true, "proof": "next/m0.proof"}, `+strings.Replace(member(2), "out/m2.so", "next/m2.so", 1))
	// A kept member's new proof is the predecessor's proof file.
	sameProof := write("g1b.json", fmt.Sprintf(`{"name": "m0", "keep": true, "proof": %q}, `, m0.Members[0].Proof)+strings.Replace(member(2), "out/m2.so", "next2/m2.so", 1))
	// A new member's output is the predecessor's lineage.
	onLineage := write("g1c.json", `{"name": "m0", "keep": true, "proof": "next3/m0.proof"}, `+strings.Replace(member(2), "out/m2.so", "g.manifest.lineage", 1))
	for _, c := range []struct {
		name string
		args []string
	}{
		{"default manifest beside the predecessor", []string{beside}},
		{"--manifest is the predecessor's lineage", []string{"--manifest", lineage0, beside}},
		{"--manifest whose lineage is the predecessor's", []string{"--manifest", filepath.Join(v0, "g.manifest.json"), beside}},
		{"--manifest is the predecessor's folder", []string{"--manifest", v0, beside}},
		{"a kept member's proof is its old proof", []string{"--manifest", filepath.Join(d, "v1.json"), sameProof}},
		{"a member's output is the predecessor's lineage", []string{"--manifest", filepath.Join(d, "v1c.json"), onLineage}},
	} {
		for _, force := range []bool{false, true} {
			args := []string{"group", "sign", "-q", "--predecessor", man0, "--update-key", upd}
			if force {
				args = append(args, "-force")
			}
			code, _, errs := magectl(t, nil, append(args, c.args...)...)
			if code != 2 || !strings.Contains(errs, "input") {
				t.Errorf("%s (force %t): exit %d, want 2 naming the input: %s", c.name, force, code, errs)
			}
			for i, b := range snapshot() {
				if !bytes.Equal(b, before[i]) {
					t.Fatalf("%s (force %t) changed %s", c.name, force, inputs[i])
				}
			}
		}
	}
}

// TestKeygenPrivateKeyFiles (issue 18, hole 10): a private key goes only
// to a new regular file of mode 0600, or in place of a regular file with
// -force; never through a symbolic link (dangling or not), into a FIFO or
// a device, whatever -force says.
func TestKeygenPrivateKeyFiles(t *testing.T) {
	d := t.TempDir()
	// Both kinds of key share the writer; update keys are fast to make.
	for _, update := range []bool{true} {
		keygen := func(args ...string) (int, string) {
			if update {
				args = append([]string{"--update-key"}, args...)
			}
			code, _, errs := magectl(t, nil, append([]string{"keygen"}, args...)...)
			return code, errs
		}
		sub := filepath.Join(d, fmt.Sprint(update))
		os.MkdirAll(sub, 0o755)
		fresh := filepath.Join(sub, "new", "key.pem")
		if code, errs := keygen("-out", fresh); code != 0 {
			t.Fatalf("new file: exit %d: %s", code, errs)
		}
		if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("new key file: %v %v", fi, err)
		}
		// An existing regular file: refused, then replaced with -force
		// (mode 0600 whatever the old file had).
		old := filepath.Join(sub, "old.pem")
		os.WriteFile(old, []byte("old"), 0o644)
		if code, _ := keygen("-out", old); code == 0 || mustReadString(t, old) != "old" {
			t.Errorf("an existing file without -force: exit %d", code)
		}
		if code, errs := keygen("-out", old, "-force"); code != 0 {
			t.Errorf("an existing file with -force: exit %d: %s", code, errs)
		}
		if fi, _ := os.Stat(old); fi.Mode().Perm() != 0o600 || mustReadString(t, old) == "old" {
			t.Errorf("replaced key file: mode %v", fi.Mode())
		}
		// Links, dangling or not, and a FIFO with a reader waiting.
		target := filepath.Join(sub, "target")
		os.WriteFile(target, []byte("target"), 0o644)
		link := filepath.Join(sub, "link.pem")
		os.Symlink(target, link)
		dangling := filepath.Join(sub, "dangling.pem")
		os.Symlink(filepath.Join(sub, "nowhere"), dangling)
		devnull := filepath.Join(sub, "devnull.pem")
		os.Symlink("/dev/null", devnull)
		fifo := filepath.Join(sub, "fifo.pem")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{link, dangling, devnull, fifo} {
			for _, force := range []bool{false, true} {
				args := []string{"-out", p}
				if force {
					args = append(args, "-force")
				}
				if code, errs := keygen(args...); code == 0 || !strings.Contains(errs, "regular file") {
					t.Errorf("%s (force %t): exit %d: %s", filepath.Base(p), force, code, errs)
				}
			}
		}
		buf := make([]byte, 64)
		if n, _ := reader.Read(buf); n != 0 {
			t.Errorf("%d bytes of a private key written into a FIFO", n)
		}
		reader.Close()
		if mustReadString(t, target) != "target" {
			t.Error("a private key was written through a link")
		}
		if _, err := os.Lstat(filepath.Join(sub, "nowhere")); err == nil {
			t.Error("a dangling link's target was created")
		}
	}
}
