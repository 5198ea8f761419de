//go:build cgo

package libmage

import (
	"bytes"
	"debug/elf"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magesgx/mage/mage"
)

// compiler returns the path of a C compiler, or skips the test.
func compiler(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Flags that prove the library builds as the SGX SDK builds trusted code:
// no host headers (tlibc's stand in; here the compiler's own freestanding
// stdint.h/stddef.h), no builtins, position-independent, stack protector,
// hidden visibility, one section per function; and the strictest warnings.
var (
	strictFlags = []string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"}
	sdkFlags    = []string{"-nostdinc", "-ffreestanding", "-fno-builtin", "-fpie", "-fPIC", "-fstack-protector-strong",
		"-fvisibility=hidden", "-ffunction-sections", "-fdata-sections"}
)

// TestStrictCompile builds the library with plain and SDK-style flags under
// -Wall -Wextra -Werror -pedantic, with gcc and (if present) clang, and
// checks that the objects need nothing from any C library but the stack
// protector's hook, which tlibc provides.
func TestStrictCompile(t *testing.T) {
	for _, cc := range []string{"gcc", "clang"} {
		t.Run(cc, func(t *testing.T) {
			path := compiler(t, cc)
			inc := strings.TrimSpace(run(t, path, "-print-file-name=include"))
			dir := t.TempDir()
			for _, src := range []string{"mage.c", "sgx_mage.c"} {
				obj := filepath.Join(dir, src+".o")
				run(t, path, append(append([]string{}, strictFlags...), "-c", src, "-o", obj)...)
				sdk := filepath.Join(dir, src+".sdk.o")
				args := append(append(append([]string{}, strictFlags...), sdkFlags...), "-isystem", inc, "-c", src, "-o", sdk)
				run(t, path, args...)
				for _, sym := range strings.Fields(run(t, "nm", "-u", sdk)) {
					switch sym {
					case "U", "__stack_chk_fail", "__stack_chk_guard", "_GLOBAL_OFFSET_TABLE_", "mage_count", "mage_derive":
					default:
						t.Errorf("%s built SDK-style needs %s", src, sym)
					}
				}
			}
		})
	}
}

// TestDropIn builds a program written against the prototype's API, as its
// sample enclaves use it, from C++ with the SDK's header names; fills the
// .sgx_mage section of the linked binary with a reference group's table,
// as the group signer does; runs it; and compares every derived
// measurement with package mage.
func TestDropIn(t *testing.T) {
	gcc := compiler(t, "gcc")
	gxx := compiler(t, "g++")
	dir := t.TempDir()
	var objs []string
	for _, src := range []string{"mage.c", "sgx_mage.c"} {
		o := filepath.Join(dir, src+".o")
		run(t, gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c", src, "-o", o)
		objs = append(objs, o)
	}
	bin := filepath.Join(dir, "dropin")
	run(t, gxx, append([]string{"-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", ".", "-I", "testdata/sdkinc", "testdata/dropin.cpp", "-o", bin}, objs...)...)
	for _, table := range []string{"mage/g1.sgx_mage_table.bin", "mage/g2.sgx_mage_table.bin"} {
		sec := read(t, table)
		fillSection(t, bin, sec)
		got := strings.Split(strings.TrimSpace(run(t, bin)), "\n")
		all, err := mage.DeriveAll(sec)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprint(len(all))}
		for _, m := range all {
			want = append(want, m.String())
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: the drop-in program printed\n%s\nwant\n%s", table, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// fillSection writes table into the .sgx_mage section of an ELF file.
func fillSection(t *testing.T, path string, table []byte) {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section(".sgx_mage")
	f.Close()
	switch {
	case s == nil:
		t.Fatal("no .sgx_mage section in the linked program")
	case s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_WRITE != 0 || s.Addralign < 4096 || s.Size != uint64(len(table)):
		t.Fatalf(".sgx_mage: type %v flags %v align %d size %d, want read-only PROGBITS, page-aligned, %d bytes", s.Type, s.Flags, s.Addralign, s.Size, len(table))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[s.Offset:], table)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestSanitizers runs the library under AddressSanitizer and
// UndefinedBehaviorSanitizer over every vector and over random and broken
// tables (each in a buffer of exactly its size, so any over-read is
// caught), and compares the results with package mage.
func TestSanitizers(t *testing.T) {
	bin, dir := sanitizedDriver(t)
	secs, _ := sections(t)
	var files []string
	var want []string
	add := func(name string, sec []byte) {
		p := filepath.Join(dir, fmt.Sprintf("%03d.bin", len(files)))
		if err := os.WriteFile(p, sec, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		want = append(want, goLines(sec, 12)...)
	}
	for name, sec := range secs {
		add(name, sec)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		add(fmt.Sprint(i), randomTable(r, i%2 == 1))
	}
	add("empty", nil)
	add("one byte", []byte{1})
	same(t, "sanitized C", runDriver(t, bin, append([]string{"12"}, files...)...), want)
}

// sanitizedDriver builds testdata/driver.c and the library with
// AddressSanitizer and UndefinedBehaviorSanitizer (skipping the test when
// the toolchain cannot), in a temporary folder it returns too.
func sanitizedDriver(t *testing.T) (bin, dir string) {
	gcc := compiler(t, "gcc")
	dir = t.TempDir()
	bin = filepath.Join(dir, "driver")
	args := []string{"-std=c99", "-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
		"testdata/driver.c", "mage.c", "-o", bin}
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Skipf("this toolchain cannot build with -fsanitize=address,undefined: %v\n%s", err, out)
	}
	return bin, dir
}

// runDriver runs the driver over files; a sanitizer report fails the
// test. It returns the driver's lines, each trimmed.
func runDriver(t *testing.T, bin string, args ...string) []string {
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("sanitized driver: %v\n%s", err, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := range got {
		got[i] = strings.TrimSpace(got[i])
	}
	return got
}

// TestReadmeExamplesCompile compiles every C example of README.md with the
// library's headers and strict flags, so the examples cannot drift from
// the API.
func TestReadmeExamplesCompile(t *testing.T) {
	gcc := compiler(t, "gcc")
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```c\n")[1:]
	if len(blocks) < 4 {
		t.Fatalf("README.md has %d C examples, want at least 4", len(blocks))
	}
	dir := t.TempDir()
	for i, b := range blocks {
		src := filepath.Join(dir, fmt.Sprintf("example%d.c", i))
		os.WriteFile(src, []byte(b[:strings.Index(b, "```")]), 0o644)
		run(t, gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I.", "-c", src, "-o", src+".o")
	}
}
