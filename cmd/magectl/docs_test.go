package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The documentation's command blocks, run as written (issue 19): every
// ```sh (or bash, shell, console) block of README.md, docs/*.md and
// examples/*/README.md runs with bash in a temporary folder laid out as a
// clone of the repository (its files linked, the folder the commands run
// in real, so they write there), with a magectl built from this tree first
// on PATH. The blocks of one file run in order, each on what the ones
// before it left. Two kinds of line are not run: "go test" (this is the
// test suite) and, when the tool is not installed, Gramine's own commands,
// whose outputs the test then stands in for, as the example's Go test does.

// docBlock is one command block.
type docBlock struct {
	file string
	line int
	text string
}

var fence = regexp.MustCompile("(?m)^( *)```(sh|bash|shell|console)\\s*$")

// commandBlocks returns the command blocks of a Markdown file, unindented.
func commandBlocks(t *testing.T, path string) []docBlock {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	var out []docBlock
	for _, m := range fence.FindAllStringSubmatchIndex(s, -1) {
		indent := s[m[2]:m[3]]
		body := s[m[1]+1:]
		end := strings.Index(body, "\n"+indent+"```")
		if end < 0 {
			t.Fatalf("%s: an unclosed block", path)
		}
		var lines []string
		for _, l := range strings.Split(body[:end], "\n") {
			lines = append(lines, strings.TrimPrefix(l, indent))
		}
		out = append(out, docBlock{file: path, line: strings.Count(s[:m[0]], "\n") + 1, text: strings.Join(lines, "\n")})
	}
	return out
}

// cloneOverlay lays out dst as a clone of the repository root src in which
// the folder rel (and the folders above it) are real and everything else
// is linked, and returns the path of rel in it.
func cloneOverlay(t *testing.T, src, dst, rel string) string {
	dir, from := dst, src
	parts := []string{""}
	if rel != "." {
		parts = append(parts, strings.Split(rel, "/")...)
	}
	for i, p := range parts {
		if p != "" {
			dir, from = filepath.Join(dir, p), filepath.Join(from, p)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			name := e.Name()
			if name == ".git" || (i+1 < len(parts) && name == parts[i+1]) {
				continue
			}
			if err := os.Symlink(filepath.Join(from, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// gramineTools are the commands of a Gramine installation the example
// uses; a block that needs one is skipped when it is missing.
var gramineTools = []string{"gramine-manifest", "gramine-sgx-sign", "gramine-sgx"}

// expectations are outputs the blocks must print, by a command they hold.
var expectations = map[string][]string{
	"go run ./cmd/magectl demo":                                              {"42 expected mutual attestations and 5 refusals happened"},
	"magectl demo --update":                                                  {"10 expected mutual attestations and 4 refusals happened"},
	"magectl group verify walkthrough/out/*.signed.so":                       {"ok       member 0", "ok       member 1"},
	"magectl derive --trust":                                                 {"(self)"},
	"cmp walkthrough/a.signed.so":                                            {"identical to group sign"},
	"magectl group verify --manifest walkthrough/v2":                         {"updatable group: checked at epoch 1"},
	"magectl group verify --libpal libpal.so --manifest group.manifest.json": {"ok       member 0", "ok       member 1"},
	"go run ./httpdemo/cmd/httpdemo":                                         {"member 1 answered", "another group was refused"},
}

func TestDocumentedCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every documented command: not in -short")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found:", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not found (the README's first command):", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if out, err := exec.Command(goTool, "build", "-o", filepath.Join(bin, "magectl"), ".").CombinedOutput(); err != nil {
		t.Fatalf("building magectl: %v\n%s", err, out)
	}
	files := []string{"README.md", "examples/README.md"}
	for _, pat := range []string{"docs/*.md", "examples/*/README.md"} {
		m, _ := filepath.Glob(filepath.Join(root, pat))
		for _, p := range m {
			r, _ := filepath.Rel(root, p)
			files = append(files, r)
		}
	}
	seen := map[string]bool{}
	ran, withBlocks := 0, 0
	for _, f := range files {
		blocks := commandBlocks(t, filepath.Join(root, f))
		if len(blocks) == 0 {
			continue
		}
		withBlocks++
		t.Run(f, func(t *testing.T) {
			ran++
			rel := filepath.Dir(f)
			dir := cloneOverlay(t, root, t.TempDir(), filepath.ToSlash(rel))
			for i, b := range blocks {
				runDocBlock(t, dir, bin, root, b, i, seen)
			}
		})
	}
	// The README's install command (inline, not a block) works from a
	// clone.
	t.Run("install", func(t *testing.T) {
		readme := mustReadString(t, filepath.Join(root, "README.md"))
		m := regexp.MustCompile("`((?:CGO_ENABLED=0 )?go install [^`]*)`").FindStringSubmatch(readme)
		if m == nil {
			t.Fatal("README.md gives no go install command")
		}
		gobin := t.TempDir()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", m[1])
		cmd.Dir = cloneOverlay(t, root, t.TempDir(), ".")
		cmd.Env = append(os.Environ(), "GOBIN="+gobin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", m[1], err, out)
		}
		if _, err := os.Stat(filepath.Join(gobin, "magectl")); err != nil {
			t.Errorf("%s installed no magectl: %v", m[1], err)
		}
	})
	for want := range expectations {
		if ran == withBlocks && !seen[want] {
			t.Errorf("no documented block holds %q any more: update the expectations", want)
		}
	}
}

// runDocBlock runs one block in dir.
func runDocBlock(t *testing.T, dir, bin, root string, b docBlock, i int, seen map[string]bool) {
	where := fmt.Sprintf("%s:%d", b.file, b.line)
	var script []string
	for _, l := range strings.Split(b.text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "go test ./...") && filepath.Dir(b.file) == root {
			t.Logf("%s: not run, this is the test suite: %s", where, l)
			continue
		}
		script = append(script, l)
	}
	for _, tool := range gramineTools {
		if regexp.MustCompile(`(^|\s)` + tool + `\s`).MatchString(b.text) {
			if _, err := exec.LookPath(tool); err != nil {
				t.Logf("%s: skipped, %s is not installed (Gramine); its outputs are stood in for", where, tool)
				standInGramine(t, dir, root, b.text)
				return
			}
		}
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s (block %d) failed: %v\n--- block\n%s\n--- stdout\n%s--- stderr\n%s", where, i+1, err, b.text, stdout.String(), stderr.String())
	}
	for cmdText, wants := range expectations {
		if !strings.Contains(b.text, cmdText) {
			continue
		}
		seen[cmdText] = true
		for _, w := range wants {
			if !strings.Contains(stdout.String()+stderr.String(), w) {
				t.Errorf("%s: %q printed no %q:\n%s%s", where, cmdText, w, stdout.String(), stderr.String())
			}
		}
	}
}

// standInGramine makes what a skipped Gramine step would have made, for
// the steps after it: the example's build step leaves a libpal.so and each
// member's expanded .manifest.sgx (the template with its placeholders
// filled in, as gramine-manifest and gramine-sgx-sign would).
func standInGramine(t *testing.T, dir, root, block string) {
	if !strings.Contains(block, "gramine-manifest") {
		return // the run step: nothing comes after it
	}
	pal, err := os.ReadFile(filepath.Join(root, "testdata/gramine/fakepal.so"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "libpal.so"), pal, 0o644)
	tmpl, err := os.ReadFile(filepath.Join(dir, "ledger.manifest.template"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ledger", "auditor"} {
		s := strings.NewReplacer("{{ gramine.libos }}", "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so",
			"{{ gramine.runtimedir() }}", "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc", "{{ name }}", name).Replace(string(tmpl))
		os.WriteFile(filepath.Join(dir, name+".manifest.sgx"), []byte(s), 0o644)
	}
}
