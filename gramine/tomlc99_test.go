package gramine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// leaves lists a parsed TOML tree as tomldump.c prints it.
func leaves(path string, v any, out *[]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, v := range x {
			leaves(join(k), v, out)
		}
	case []any:
		*out = append(*out, fmt.Sprintf("%s\tarray:%d", path, len(x)))
		for i, v := range x {
			leaves(fmt.Sprintf("%s[%d]", path, i), v, out)
		}
	case string:
		*out = append(*out, path+"\tstring:"+x)
	case bool:
		*out = append(*out, fmt.Sprintf("%s\tbool:%t", path, x))
	case int64:
		*out = append(*out, fmt.Sprintf("%s\tint:%d", path, x))
	case float64:
		*out = append(*out, fmt.Sprintf("%s\tfloat:%g", path, x))
	default:
		*out = append(*out, fmt.Sprintf("%s\t%T", path, x))
	}
}

// TestTomlc99 checks that tomlc99, the parser Gramine uses inside the
// enclave (commit 208203af), reads every re-emitted manifest (flat dotted
// keys, comment padding, the MAGE table as the last line) exactly as
// go-toml does, with the table at the root. It needs the tomlc99 sources:
// set TOMLC99_DIR to a directory holding toml.c and toml.h at that commit.
func TestTomlc99(t *testing.T) {
	dir := os.Getenv("TOMLC99_DIR")
	if dir == "" {
		t.Skip("TOMLC99_DIR is not set: no tomlc99 sources (github.com/cktan/tomlc99 at 208203af) to build")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("no gcc: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tomldump")
	if out, err := exec.Command(gcc, "-O1", "-I", dir, filepath.Join(dir, "toml.c"), "testdata/tomldump.c", "-o", bin).CombinedOutput(); err != nil {
		t.Fatalf("building tomlc99: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(vectors, "single", "*", "*.manifest.sgx"))
	table := `loader.env.MAGE_TABLE = "` + strings.Repeat("0123456789abcdef", 9) + "\"\n"
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		m, err := ParseManifest(raw)
		if err != nil {
			t.Fatal(err)
		}
		flat, err := FlattenManifest(m.Tree)
		if err != nil {
			t.Fatal(err)
		}
		final := append(PadToPages(flat), table...)
		p := filepath.Join(t.TempDir(), filepath.Base(f))
		os.WriteFile(p, final, 0o644)
		out, err := exec.Command(bin, p).Output()
		if err != nil {
			t.Fatalf("%s: tomlc99 refuses the re-emitted manifest: %v", filepath.Base(f), err)
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		back, err := ParseManifest(final)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		leaves("", back.Tree, &want)
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: tomlc99 reads\n%s\ngo-toml reads\n%s", filepath.Base(f), strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(string(out), "loader.env.MAGE_TABLE\tstring:") {
			t.Errorf("%s: tomlc99 does not see the table at the root", filepath.Base(f))
		}
	}
}
