package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/magesgx/mage/internal/ovmf/ovmftest"
	"github.com/magesgx/mage/mage"
)

// Issue 19: a newcomer's path with no dead ends. One test per item; the
// walkthroughs themselves run in TestDocumentedCommands.

// Item 1: a group's folder moves; a successor is signed from its own
// folder with a relative predecessor; a mismatch names the member and
// both MRENCLAVEs, never a Go struct.
func TestGroupFilesMove(t *testing.T) {
	d := t.TempDir()
	a := filepath.Join(d, "a")
	os.MkdirAll(a, 0o755)
	gf := groupFile(t, a, "g1.group.json")
	mustRun(t, "group", "sign", "-q", gf)
	man := filepath.Join(a, "g1.manifest.json")
	var raw struct {
		Paths   string `json:"paths"`
		Members []struct{ File string }
	}
	json.Unmarshal([]byte(mustReadString(t, man)), &raw)
	if raw.Paths != "manifest" || raw.Members[0].File != "out/g1_v0.so" {
		t.Fatalf("manifest paths: %+v", raw)
	}
	// Move the folder, and verify from elsewhere.
	b := filepath.Join(d, "moved")
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	out := mustRun(t, "group", "verify", "--manifest", filepath.Join(b, "g1.manifest.json"))
	if strings.Count(out, "ok       member") != 3 {
		t.Errorf("group verify of a moved group:\n%s", out)
	}
	// A manifest of another group beside the members: the mismatch names
	// the member and both MRENCLAVEs.
	m, err := mage.LoadManifest(filepath.Join(b, "g1.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m.Members[1].Identity.MRENCLAVE[0] ^= 1
	m.RelativeTo(b)
	bad, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(b, "bad.json"), bad, 0o644)
	code, out, _ := magectl(t, nil, "group", "verify", "--manifest", filepath.Join(b, "bad.json"))
	if code != 1 || strings.Contains(out, "{") || !strings.Contains(out, "member 1 (g1_m1)") || !strings.Contains(out, m.Members[1].Identity.MRENCLAVE.String()) {
		t.Errorf("a mismatch: exit %d\n%s", code, out)
	}

	// A successor signed from its own folder, with a relative predecessor.
	upd := filepath.Join(d, "upd.pem")
	mustRun(t, "keygen", "--update-key", "--out", upd)
	v1 := filepath.Join(d, "v1")
	os.MkdirAll(v1, 0o755)
	g1 := groupFile(t, v1, "g.json")
	mustRun(t, "group", "sign", "-q", "--table", "merkle", "--update-key", upd, g1)
	v2 := filepath.Join(d, "v2")
	os.MkdirAll(v2, 0o755)
	cfg := fmt.Sprintf(`{"name": "g1", "date": "2026-12-05", "members": [{"name": "g1_m0", "keep": true},
		{"name": "new", "enclave": %q, "key": %q, "output": "out/new.so"}]}`, v("enclaves/g1_m1.so"), v("keys/g1_k1.pem"))
	os.WriteFile(filepath.Join(v2, "g.json"), []byte(cfg), 0o644)
	t.Chdir(v2)
	mustRun(t, "group", "sign", "-q", "--predecessor", "../v1/g.manifest.json", "--update-key", upd, "g.json")
	t.Chdir(d)
	if out := mustRun(t, "group", "verify", "--manifest", "v2/g.manifest.json"); !strings.Contains(out, "epoch 1") || strings.Contains(out, "problem") {
		t.Errorf("the successor:\n%s", out)
	}

	// A manifest written before paths were relative to it reads as before:
	// relative to the working directory.
	old, _ := mage.LoadManifest(filepath.Join(b, "g1.manifest.json"))
	old.Paths = ""
	for i := range old.Members {
		old.Members[i].File, _ = filepath.Rel(d, old.Members[i].File)
	}
	ob, _ := json.Marshal(old)
	os.WriteFile(filepath.Join(b, "old.json"), ob, 0o644)
	if out := mustRun(t, "group", "verify", "--manifest", filepath.Join(b, "old.json")); strings.Count(out, "ok       member") != 3 {
		t.Errorf("an older manifest:\n%s", out)
	}
}

// Item 12 (and 2): two group files in a folder get their own manifests;
// another group's manifest is never overwritten, nor is --force suggested
// for it; --manifest may name a folder.
func TestManifestNamesDoNotCollide(t *testing.T) {
	d := t.TempDir()
	a, b := groupFile(t, d, "a.json"), groupFile(t, d, "group.json")
	mustRun(t, "group", "sign", "-q", "--manifest", filepath.Join(d, "shared.json"), a)
	// b (another group, once renamed) would go to the same file.
	raw := strings.Replace(mustReadString(t, b), `"name": "g1"`, `"name": "other"`, 1)
	raw = strings.ReplaceAll(raw, `"output": "out/`, `"output": "out2/`)
	os.WriteFile(b, []byte(raw), 0o644)
	for _, force := range []bool{false, true} {
		args := []string{"group", "sign", "-q", "--manifest", filepath.Join(d, "shared.json"), b}
		if force {
			args = append(args, "--force")
		}
		code, _, errs := magectl(t, nil, args...)
		if code != 2 || !strings.Contains(errs, "another group") || strings.Contains(errs, "use --force") {
			t.Errorf("another group's manifest (force %t): exit %d %s", force, code, errs)
		}
	}
	// By default each gets its own, and group.json's is not group.json.
	mustRun(t, "group", "sign", "-q", b)
	if _, err := os.Stat(filepath.Join(d, "group.manifest.json")); err != nil {
		t.Error(err)
	}
	// --manifest naming a folder puts the manifest in it.
	sub := filepath.Join(d, "manifests")
	os.MkdirAll(sub, 0o755)
	mustRun(t, "group", "sign", "-q", "--force", "--manifest", sub, a)
	if _, err := os.Stat(filepath.Join(sub, "a.manifest.json")); err != nil {
		t.Error(err)
	}
}

// Items 6 and 14: help on stdout everywhere, with two-dash flags; group
// --help lists every subcommand; version --json.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{{"derive", "--help"}, {"group", "--help"}, {"group", "sign", "--help"}, {"keygen", "-h"}, {"sim", "load", "--help"}, {"help", "measure"}} {
		code, out, errs := magectl(t, nil, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "Usage: magectl") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
		if regexp.MustCompile(`\n  -[a-z]`).MatchString(out) {
			t.Errorf("%v: a flag with one dash in help:\n%s", args, out)
		}
	}
	_, out, _ := magectl(t, nil, "group", "--help")
	for _, sub := range []string{"sign", "verify", "gendata", "catsig"} {
		if !strings.Contains(out, "\n  "+sub+" ") {
			t.Errorf("group --help does not list %s:\n%s", sub, out)
		}
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(mustRun(t, "version", "--json")), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version --json: %+v %v", v, err)
	}
	// A usage error keeps its help on stderr.
	if code, out, errs := magectl(t, nil, "group"); code != 2 || out != "" || !strings.Contains(errs, "Usage") {
		t.Errorf("group alone: exit %d, stdout %q", code, out)
	}
}

// Item 7: progress in a log (stderr not a terminal) is a line per stage,
// never a carriage return; -q prints none.
func TestProgressInLogs(t *testing.T) {
	d := t.TempDir()
	var members []string
	for i := range 12 {
		members = append(members, heapMember(d, i))
	}
	gf := filepath.Join(d, "g.json")
	os.WriteFile(gf, []byte(`{"name": "big", "date": "2026-12-05", "members": [`+strings.Join(members, ",")+`]}`), 0o644)
	_, _, errs := magectl(t, nil, "group", "sign", "--table", "merkle", gf)
	if strings.Contains(errs, "\r") || !strings.Contains(errs, "measure 12/12\n") {
		t.Errorf("progress in a log: %q", errs)
	}
	_, _, errs = magectl(t, nil, "group", "sign", "-q", "--force", "--table", "merkle", gf)
	if errs != "" {
		t.Errorf("-q: %q", errs)
	}
}

// Items 8 and 9: one answer per question, and exit codes that mean one
// thing.
func TestConsistentOutput(t *testing.T) {
	d := t.TempDir()
	// A Gramine-only group prints no "(0 bytes)".
	g := func(p string) string { return filepath.Join(gvec, p) }
	gram := fmt.Sprintf(`{"name": "d6", "manifest": %q, "key": %q, "output": "out/d6.manifest.sgx"}`, g("single/d6_defaults/d6_defaults.manifest.sgx"), g("key.pem"))
	sdk := fmt.Sprintf(`{"name": "a", "enclave": %q, "config": %q, "key": %q, "output": "out/a.so"}`, v("enclaves/g1_m0.so"), v("configs/cG1_group_a.config.xml"), v("keys/g1_k0.pem"))
	gonly := filepath.Join(d, "gonly.json")
	os.WriteFile(gonly, []byte(fmt.Sprintf(`{"name": "gonly", "date": "20261205", "libpal": %q, "members": [%s]}`, g("fakepal.so"), gram)), 0o644)
	if out := mustRun(t, "group", "sign", gonly); strings.Contains(out, "(0 bytes)") {
		t.Errorf("a Gramine-only group:\n%s", out)
	}
	// A mixed group: derive and group verify without --libpal are usage
	// errors naming it.
	mixed := filepath.Join(d, "mixed.json")
	os.WriteFile(mixed, []byte(fmt.Sprintf(`{"name": "mixed", "date": "20261205", "libpal": %q, "members": [%s, %s]}`, g("fakepal.so"), sdk, strings.ReplaceAll(gram, "out/d6", "out/m-d6"))), 0o644)
	mustRun(t, "group", "sign", "-q", mixed)
	for _, args := range [][]string{{"derive", filepath.Join(d, "out", "a.so")}, {"group", "verify", "--manifest", filepath.Join(d, "mixed.manifest.json")}} {
		if code, _, errs := magectl(t, nil, args...); code != 2 || !strings.Contains(errs, "--libpal is required") {
			t.Errorf("%v without --libpal: exit %d %s", args, code, errs)
		}
	}
	// gramine show: the same attributes in text and JSON.
	sig := filepath.Join(d, "out", "d6.sig")
	text := mustRun(t, "gramine", "show", sig)
	var js struct {
		Identity struct {
			Attributes struct{ Flags, Xfrm string }
		}
	}
	json.Unmarshal([]byte(mustRun(t, "gramine", "show", "--json", sig)), &js)
	var flags uint64
	fmt.Sscanf(js.Identity.Attributes.Flags, "0x%x", &flags)
	if !strings.Contains(text, fmt.Sprintf("attributes:  flags=%#x ", flags)) {
		t.Errorf("gramine show: text and JSON attributes differ (%s):\n%s", js.Identity.Attributes.Flags, text)
	}
	// measure --json on a broken signature: "match" compares MRENCLAVEs.
	bad := brokenSignature(t, v("signed/g1_v0.signed.so"))
	_, out, _ := magectl(t, nil, "measure", "--json", "--enclave", bad)
	var m map[string]any
	json.Unmarshal([]byte(out), &m)
	if m["mrenclave"] == m["sigstruct_mrenclave"] && m["match"] != true || m["signature_valid"] != false {
		t.Errorf("measure --json on a broken signature:\n%s", out)
	}
	// derive on a Merkle member: its own MRENCLAVE in text, no null in JSON.
	os.MkdirAll(filepath.Join(d, "merkle"), 0o755)
	mg := groupFile(t, filepath.Join(d, "merkle"), "g.json")
	mustRun(t, "group", "sign", "-q", "--table", "merkle", mg)
	member := filepath.Join(d, "merkle", "out", "g1_v0.so")
	self := strings.TrimSpace(strings.SplitN(mustRun(t, "measure", "--enclave", member), "\n", 2)[0])
	if out := mustRun(t, "derive", member); !strings.Contains(out, strings.TrimPrefix(self, "mrenclave ")+"  (self)") {
		t.Errorf("derive on a Merkle member:\n%s", out)
	}
	if out := mustRun(t, "derive", "--json", member); strings.Contains(out, "null") {
		t.Errorf("derive --json on a Merkle member:\n%s", out)
	}
	// A Merkle verify error names what failed, never (<nil>).
	os.WriteFile(filepath.Join(d, "merkle", "out", "g1_v1.so.proof"), mustReadBytes(t, filepath.Join(d, "merkle", "out", "g1_v2.so.proof")), 0o644)
	if _, out, _ := magectl(t, nil, "group", "verify", filepath.Join(d, "merkle", "out", "g1_v0.so"), filepath.Join(d, "merkle", "out", "g1_v1.so")); strings.Contains(out, "<nil>") || !strings.Contains(out, "problem") {
		t.Errorf("a Merkle verify error:\n%s", out)
	}
	// derive --proof on a file that is not a proof.
	if code, _, errs := magectl(t, nil, "derive", "--proof", member, member); code == 0 || !strings.Contains(errs, "is not a proof") {
		t.Errorf("derive --proof x.so: exit %d %s", code, errs)
	}
	// Output over an input: 2 in every flow.
	for _, args := range [][]string{
		{"sign", "-enclave", v("enclaves/e1_small.so"), "-key", v("keys/k1.pem"), "-out", v("enclaves/e1_small.so")},
		{"group", "sign", "-q", "--force", "--manifest", mg, mg},
		{"keygen", "--out", "x", "--pubout", "x"},
	} {
		if code, _, errs := magectl(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args[:2], code, errs)
		}
	}
}

func mustReadBytes(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Item 9: Ctrl-C (a canceled context) prints "interrupted" and exits 130.
func TestInterrupted(t *testing.T) {
	d := t.TempDir()
	gf := groupFile(t, d, "g.json")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb strings.Builder
	e := &env{ctx: ctx, stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(e, []string{"group", "sign", "-q", gf}); code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("an interrupted group sign: exit %d %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(d, "out")); err == nil {
		t.Error("an interrupted group sign left outputs")
	}
}

// Item 10: a manifest write that fails leaves no signed member.
func TestFailedManifestLeavesNothing(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	d := t.TempDir()
	gf := groupFile(t, d, "g.json")
	if code, _, errs := magectl(t, nil, "group", "sign", "-q", "--manifest", "/dev/full", gf); code == 0 {
		t.Fatalf("group sign into /dev/full: exit 0 %s", errs)
	}
	if ents, _ := os.ReadDir(filepath.Join(d, "out")); len(ents) != 0 {
		t.Errorf("a failed manifest write left %d files in out/", len(ents))
	}
}

// Item 11: a classic group larger than its section fails at once and
// suggests a Merkle table.
func TestClassicCapacityFirst(t *testing.T) {
	d := t.TempDir()
	var members []string
	for i := range 100 {
		members = append(members, fmt.Sprintf(`{"name": "m%d", "enclave": %q, "key": %q, "output": "out/m%d.so"}`, i, v("enclaves/g1_m0.so"), v("keys/g1_k0.pem"), i))
	}
	gf := filepath.Join(d, "g.json")
	os.WriteFile(gf, []byte(`{"name": "big", "date": "20261205", "members": [`+strings.Join(members, ",")+`]}`), 0o644)
	code, _, errs := magectl(t, nil, "group", "sign", gf)
	if code == 0 || !strings.Contains(errs, "holds at most 85") || !strings.Contains(errs, "--table merkle") || strings.Contains(errs, "measure ") {
		t.Errorf("100 members in a classic table: exit %d %s", code, errs)
	}
}

// TestCLITDXMeasure: magectl tdx measure gives the MRTD the reference tool
// gives for Debian's OVMF (testdata/tdx), and refuses an SGX enclave.
func TestCLITDXMeasure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "OVMF.fd")
	os.WriteFile(p, ovmftest.DebianOVMF(t), 0o644)
	if out := mustRun(t, "tdx", "measure", p); strings.TrimSpace(out) != "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47" {
		t.Errorf("tdx measure: %s", out)
	}
	if out := mustRun(t, "tdx", "measure", "--json", p); !strings.Contains(out, `"mrtd": "4c7206f0`) || !strings.Contains(out, `"gpa"`) {
		t.Errorf("tdx measure --json:\n%s", out)
	}
	if code, _, errs := magectl(t, nil, "tdx", "measure", v("enclaves/g1_m0.so")); code != 3 || !strings.Contains(errs, "tdx: firmware") {
		t.Errorf("tdx measure of an SGX enclave: exit %d %s", code, errs)
	}
}

// TestCLISNPMeasure: magectl snp measure gives sev-snp-measure's digest
// for Debian's OVMF (testdata/snp), and refuses bad options.
func TestCLISNPMeasure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "OVMF.fd")
	os.WriteFile(p, ovmftest.DebianOVMF(t), 0o644)
	if out := mustRun(t, "snp", "measure", "--vcpus", "2", "--vcpu-type", "EPYC-v4", p); strings.TrimSpace(out) != "a5b54e62ae971b58274dd24cc6c47b842662617036e7bd67d7326c07ac6363f35399ef933330a5ea160cead90a00603f" {
		t.Errorf("snp measure: %s", out)
	}
	for _, args := range [][]string{{"snp", "measure", p}, {"snp", "measure", "--vcpus", "1", "--vcpu-type", "Skylake", p},
		{"snp", "measure", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--append", "x", p},
		{"snp", "measure", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--firmware-digest", "00", p}} {
		if code, _, errs := magectl(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
	// A direct boot: Debian's OVMF has no hashes page; the AmdSev image's
	// last page, with sev-snp-measure's firmware digest, gives its value
	// (testdata/snp/direct-boot.tsv).
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, genFile(300001, 1), 0o644)
	os.WriteFile(initrd, genFile(123457, 3), 0o644)
	if code, _, errs := magectl(t, nil, "snp", "measure", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--kernel", kernel, p); code != 3 || !strings.Contains(errs, "SNP_KERNEL_HASHES") {
		t.Errorf("direct boot on Debian's OVMF: exit %d %s", code, errs)
	}
	out := mustRun(t, "snp", "measure", "--vcpus", "3", "--vcpu-type", "EPYC-Milan", "--guest-features", "0x21",
		"--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0 mage.table=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		"--firmware-digest", "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
		"--json", "../../testdata/snp/ovmf_AmdSev_suffix.bin")
	var got struct {
		Measurement  string
		KernelSHA256 string `json:"kernel_sha256"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := ""
	b, _ := os.ReadFile("../../testdata/snp/direct-boot.tsv")
	for line := range strings.Lines(string(b)) {
		if f := strings.Split(strings.TrimSpace(line), "\t"); f[0] != "none" && f[1] == "3" && f[2] == "EPYC-Milan" && f[3] == "0x21" && f[5] == "initrd-a" {
			want = f[7]
		}
	}
	if got.Measurement != want || want == "" || got.KernelSHA256 != "7735d1b87187c2e176a16182a99528d6d6abf6a602cdda97b875029f631d914b" {
		t.Errorf("snp measure with a direct boot: %s, sev-snp-measure %q", out, want)
	}
}

// genFile is a generated test file of n bytes, byte i being i*7+seed
// (testdata/snp/README.md).
func genFile(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}
