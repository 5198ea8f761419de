package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magesgx/mage/internal/ovmf/ovmftest"
	"github.com/magesgx/mage/mage"
)

// amdSevDigest is sev-snp-measure's digest of the firmware pages of the
// AmdSev image whose last page is testdata/snp/ovmf_AmdSev_suffix.bin.
const amdSevDigest = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"

// TestCLISNPGroup: a group file with two SDK enclaves and an SEV-SNP VM
// signs; the VM gets the command line that binds the table and the table
// itself; the manifest's launch digest is what snp measure gives for that
// command line; every SDK member's table derives the VM.
func TestCLISNPGroup(t *testing.T) {
	d := t.TempDir()
	kernel := filepath.Join(d, "vmlinuz")
	os.WriteFile(kernel, []byte("a stand-in kernel"), 0o644)
	fw, _ := filepath.Abs("../../testdata/snp/ovmf_AmdSev_suffix.bin")
	vm := fmt.Sprintf(`{"name": "erin", "snp": {"firmware": %q, "firmware_digest": %q, "vcpus": 2, "vcpu_type": "EPYC-Milan", "kernel": "vmlinuz", "cmdline": "console=ttyS0"}, "output": "out/erin.cmdline"}`, fw, amdSevDigest)
	gf := filepath.Join(d, "group.json")
	os.WriteFile(gf, []byte(`{"name": "vms", "date": "20261205", "members": [`+heapMember(d, 0)+`, `+vm+`, `+heapMember(d, 1)+`]}`), 0o644)
	out := mustRun(t, "group", "sign", "-q", "--json", gf)
	var man mage.Manifest
	if err := json.Unmarshal([]byte(out), &man); err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile(filepath.Join(d, "out/erin.table"))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(filepath.Join(d, "out/erin.cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(table)
	if want := "console=ttyS0 mage.table=" + hex.EncodeToString(sum[:]); string(cmdline) != want || man.TableSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("command line %q, want %q (manifest table %s)", cmdline, want, man.TableSHA256)
	}
	erin := man.Members[1]
	if man.Format != "versioned" || erin.Kind != "snp" || erin.Cmdline != string(cmdline) || len(erin.Launch) != 96 {
		t.Fatalf("manifest: %s", out)
	}
	measured := mustRun(t, "snp", "measure", "--vcpus", "2", "--vcpu-type", "EPYC-Milan", "--firmware-digest", amdSevDigest,
		"--kernel", kernel, "--append", string(cmdline), fw)
	if strings.TrimSpace(measured) != erin.Launch {
		t.Errorf("the VM booted with its command line measures %s, the manifest says %s", measured, erin.Launch)
	}
	for _, i := range []int{0, 2} {
		code, dout, derr := magectl(t, nil, "derive", "--json", filepath.Join(d, man.Members[i].File))
		if code != 0 || !strings.Contains(dout, erin.Launch) {
			t.Errorf("derive from member %d: exit %d\n%s\n%s", i, code, dout, derr)
		}
	}
	if _, err := mage.LoadManifest(filepath.Join(d, "group.manifest.json")); err != nil {
		t.Errorf("the manifest does not read back: %v", err)
	}

	// Refusals: a VM with a key, a missing kernel, a command line with its
	// own table; an image without a hashes page.
	for name, bad := range map[string]string{
		"key":        strings.Replace(vm, `"output"`, `"key": "k.pem", "output"`, 1),
		"no kernel":  strings.Replace(vm, `"kernel": "vmlinuz", `, ``, 1),
		"own table":  strings.Replace(vm, `"console=ttyS0"`, `"mage.table=00"`, 1),
		"zero vcpus": strings.Replace(vm, `"vcpus": 2`, `"vcpus": 0`, 1),
	} {
		os.WriteFile(gf, []byte(`{"name": "vms", "members": [`+bad+`]}`), 0o644)
		if code, _, errs := magectl(t, nil, "group", "sign", "-q", "--force", gf); code == 0 || errs == "" {
			t.Errorf("%s: exit %d %s", name, code, errs)
		}
	}
}

// TestCLISNPGroupVerify: group verify checks a group with a VM member
// from its manifest: the enclaves' tables derive the VM's launch digest,
// and its command line file binds the table; a changed command line is a
// mismatch (exit 1).
func TestCLISNPGroupVerify(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "vmlinuz"), []byte("a stand-in kernel"), 0o644)
	fw, _ := filepath.Abs("../../testdata/snp/ovmf_AmdSev_suffix.bin")
	vm := fmt.Sprintf(`{"name": "erin", "snp": {"firmware": %q, "firmware_digest": %q, "vcpus": 1, "vcpu_type": "EPYC-Genoa", "kernel": "vmlinuz"}, "output": "erin.cmdline"}`, fw, amdSevDigest)
	gf := filepath.Join(d, "group.json")
	os.WriteFile(gf, []byte(`{"name": "vms", "date": "20261205", "members": [`+heapMember(d, 0)+`, `+vm+`, `+heapMember(d, 1)+`]}`), 0o644)
	mustRun(t, "group", "sign", "-q", gf)
	man := filepath.Join(d, "group.manifest.json")
	out := mustRun(t, "group", "verify", "--manifest", man)
	if !strings.Contains(out, "ok       member 1 snp launch") || strings.Contains(out, "MISMATCH") {
		t.Errorf("group verify:\n%s", out)
	}
	// From inside the VM: its table, checked against its command line,
	// derives every member.
	dv := mustRun(t, "derive", "--vm-cmdline", filepath.Join(d, "erin.cmdline"), filepath.Join(d, "erin.table"))
	if !strings.Contains(dv, "1 snp launch") || !strings.HasPrefix(dv, "0 ") {
		t.Errorf("derive --vm-cmdline:\n%s", dv)
	}
	os.WriteFile(filepath.Join(d, "erin.cmdline"), []byte("quiet"), 0o644)
	if code, _, errs := magectl(t, nil, "derive", "--vm-cmdline", filepath.Join(d, "erin.cmdline"), filepath.Join(d, "erin.table")); code != 3 || !strings.Contains(errs, "mage.table") {
		t.Errorf("derive with a command line that binds no table: exit %d %s", code, errs)
	}
	if code, out, _ := magectl(t, nil, "group", "verify", "--manifest", man); code != 1 || !strings.Contains(out, "MISMATCH member 1 snp") {
		t.Errorf("a changed command line: exit %d\n%s", code, out)
	}
}

// TestCLITDXGroup: a group file with an SDK enclave and a TDX trust domain
// (Debian's OVMF, the boot of go-tdx-guest's event log) signs; the TD is
// handed the table; the manifest has its MRTD (magectl tdx measure's) and
// RTMRs; group verify checks them from the enclave's table, and a changed
// table file is a mismatch.
func TestCLITDXGroup(t *testing.T) {
	d := t.TempDir()
	fw := filepath.Join(d, "OVMF.fd")
	os.WriteFile(fw, ovmftest.DebianOVMF(t), 0o644)
	ccel, _ := filepath.Abs("../../testdata/tdx/ccel/ccel_data.dat")
	td := fmt.Sprintf(`{"name": "frank", "tdx": {"firmware": "OVMF.fd", "event_log": %q}, "output": "frank.table"}`, ccel)
	gf := filepath.Join(d, "group.json")
	os.WriteFile(gf, []byte(`{"name": "tds", "date": "20261205", "members": [`+heapMember(d, 0)+`, `+td+`]}`), 0o644)
	out := mustRun(t, "group", "sign", "-q", "--json", gf)
	var man mage.Manifest
	if err := json.Unmarshal([]byte(out), &man); err != nil {
		t.Fatal(err)
	}
	frank := man.Members[1]
	if frank.Kind != "tdx" || frank.MRTD[:16] != "4c7206f0f483c524" || len(frank.RTMR) != 4 {
		t.Fatalf("manifest: %s", out)
	}
	table, _ := os.ReadFile(filepath.Join(d, "frank.table"))
	if sum := sha256.Sum256(table); hex.EncodeToString(sum[:]) != man.TableSHA256 {
		t.Error("the TD's table is not the group's")
	}
	mpath := filepath.Join(d, "group.manifest.json")
	if v := mustRun(t, "group", "verify", "--manifest", mpath); !strings.Contains(v, "ok       member 1 tdx RTMR3 "+frank.RTMR[3]) {
		t.Errorf("group verify:\n%s", v)
	}
	os.WriteFile(filepath.Join(d, "frank.table"), append(table, 0), 0o644)
	if code, v, _ := magectl(t, nil, "group", "verify", "--manifest", mpath); code != 1 || !strings.Contains(v, "MISMATCH member 1 tdx") {
		t.Errorf("a changed table: exit %d\n%s", code, v)
	}
	for name, bad := range map[string]string{
		"both firmware and mrtd": strings.Replace(td, `"firmware": "OVMF.fd"`, `"firmware": "OVMF.fd", "mrtd": "00"`, 1),
		"no boot":                strings.Replace(td, fmt.Sprintf(`, "event_log": %q`, ccel), "", 1),
		"short rtmr":             strings.Replace(td, fmt.Sprintf(`"event_log": %q`, ccel), `"rtmr": ["00"]`, 1),
	} {
		os.WriteFile(gf, []byte(`{"name": "tds", "members": [`+bad+`]}`), 0o644)
		if code, _, errs := magectl(t, nil, "group", "sign", "-q", "--force", gf); code == 0 || errs == "" {
			t.Errorf("%s: exit %d %s", name, code, errs)
		}
	}
}

// TestCLISNPVerify: snp verify checks go-sev-guest's real report with its
// VCEK: refused (exit 1) for its debug policy unless allowed by name; a
// flipped byte, a wrong expected launch digest and an expired VCEK fail.
func TestCLISNPVerify(t *testing.T) {
	report, vcek := "../../testdata/snp/attestation.bin", "../../testdata/snp/vcek.der"
	at := "2024-01-01T00:00:00Z"
	if code, _, errs := magectl(t, nil, "snp", "verify", "--vcek", vcek, "--time", at, report); code != 1 || !strings.Contains(errs, "allows debugging") {
		t.Errorf("a debug guest: exit %d %s", code, errs)
	}
	out := mustRun(t, "snp", "verify", "--vcek", vcek, "--time", at, "--insecure-allow-debug", "--json", report)
	var res struct {
		OK     bool
		Report struct {
			Measurement string
			ProductLine string `json:"product_line"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK || res.Report.ProductLine != "Milan" || !strings.HasPrefix(res.Report.Measurement, "b07af962") {
		t.Fatalf("snp verify: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(report)
	bad := filepath.Join(t.TempDir(), "bad.bin")
	raw[0x90] ^= 1
	os.WriteFile(bad, raw, 0o644)
	for name, args := range map[string][]string{
		"flipped":      {"--vcek", vcek, "--time", at, "--insecure-allow-debug", bad},
		"other launch": {"--vcek", vcek, "--time", at, "--insecure-allow-debug", "--launch", strings.Repeat("00", 48), report},
		"expired VCEK": {"--vcek", vcek, "--time", "2030-01-01T00:00:00Z", "--insecure-allow-debug", report},
	} {
		if code, _, errs := magectl(t, nil, append([]string{"snp", "verify"}, args...)...); code != 1 {
			t.Errorf("%s: exit %d %s", name, code, errs)
		}
	}
	if code, _, _ := magectl(t, nil, "snp", "verify", "--vcek", vcek, "--kds", report); code != 2 {
		t.Errorf("--vcek with --kds: exit %d", code)
	}
}

// TestCLIMixedCVMGroup: the group from one group file: two SDK
// enclaves, a Gramine enclave, an SEV-SNP VM and a TDX trust domain. group
// sign writes every member's output; group verify, with the libpal,
// checks every enclave against every table and both VMs; derive from an
// enclave and from inside the SNP VM give the same five members.
func TestCLIMixedCVMGroup(t *testing.T) {
	g := func(p string) string { return filepath.Join(gvec, p) }
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "vmlinuz"), []byte("a stand-in kernel"), 0o644)
	os.WriteFile(filepath.Join(d, "OVMF-tdx.fd"), ovmftest.DebianOVMF(t), 0o644)
	fw, _ := filepath.Abs("../../testdata/snp/ovmf_AmdSev_suffix.bin")
	ccel, _ := filepath.Abs("../../testdata/tdx/ccel/ccel_data.dat")
	members := []string{
		heapMember(d, 0),
		fmt.Sprintf(`{"name": "d2", "manifest": %q, "key": %q, "output": "d2.manifest.sgx"}`, g("single/d2_t4_256M_nodebug_isv/d2_t4_256M_nodebug_isv.manifest.sgx"), g("key.pem")),
		fmt.Sprintf(`{"name": "erin", "snp": {"firmware": %q, "firmware_digest": %q, "vcpus": 2, "vcpu_type": "EPYC-Milan", "kernel": "vmlinuz", "cmdline": "console=ttyS0"}, "output": "erin.cmdline"}`, fw, amdSevDigest),
		fmt.Sprintf(`{"name": "frank", "tdx": {"firmware": "OVMF-tdx.fd", "event_log": %q}, "output": "frank.table"}`, ccel),
		heapMember(d, 1),
	}
	gf := filepath.Join(d, "mixed.json")
	os.WriteFile(gf, []byte(fmt.Sprintf(`{"name": "mixed", "date": "20261205", "libpal": %q, "members": [%s]}`, g("fakepal.so"), strings.Join(members, ","))), 0o644)
	mustRun(t, "group", "sign", "-q", gf)
	out := mustRun(t, "group", "verify", "--libpal", g("fakepal.so"), "--manifest", filepath.Join(d, "mixed.manifest.json"))
	if strings.Count(out, "ok  ") != 5 || strings.Contains(out, "MISMATCH") {
		t.Fatalf("group verify:\n%s", out)
	}
	fromEnclave := mustRun(t, "derive", "--libpal", g("fakepal.so"), filepath.Join(d, "out/m0.so"))
	fromVM := mustRun(t, "derive", "--libpal", g("fakepal.so"), "--vm-cmdline", filepath.Join(d, "erin.cmdline"), filepath.Join(d, "erin.table"))
	if strings.Replace(fromEnclave, "  (self)", "", 1) != fromVM || strings.Count(fromVM, "\n") != 5 || !strings.Contains(fromVM, "2 snp launch") || !strings.Contains(fromVM, "3 tdx RTMR3") {
		t.Errorf("derive from an enclave:\n%s\nfrom the SNP VM:\n%s", fromEnclave, fromVM)
	}
}
