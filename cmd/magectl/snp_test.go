package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

// TestCLITDXDirectBoot: tdx measure computes a direct boot's RTMRs as the
// reference does (testdata/tdx/boot/vectors.tsv), RTMR1 and RTMR2 alone
// without ACPI tables; bad combinations are usage errors and a kernel that
// is no PE is bad input. A group file's TDX member described by its
// direct boot gets the same RTMRs in the manifest.
func TestCLITDXDirectBoot(t *testing.T) {
	d := t.TempDir()
	fw := filepath.Join(d, "OVMF.fd")
	os.WriteFile(fw, ovmftest.DebianOVMF(t), 0o644)
	boot, _ := filepath.Abs("../../testdata/tdx/boot")
	gz, _ := os.ReadFile(filepath.Join(boot, "acpi-2-2147483648.bin.gz"))
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	acpi, _ := io.ReadAll(zr)
	os.WriteFile(filepath.Join(d, "acpi.bin"), acpi, 0o644)
	kernel, initrd := filepath.Join(boot, "k1.efi"), filepath.Join(boot, "initrd-small")
	// vectors.tsv: k1.efi, initrd-small, 2 vCPUs, 2 GiB, "console=ttyS0".
	want := []string{
		"d68cacbf3b871a86e2de0bce980f8b99edabf2ff4c7e937baaaf3cadd91c43bd31e4b1543f6b8613d3bfd36318aa51bb",
		"fa25399f9a2b655d726e5e1174a89df99dd42af16ed037efc7d04408287aa923b5c23f09a86a1922991726e8b02280b2",
		"d64d8b545db00097078e5b5c520bd84927c14c7ebee4133722df1dd0556d354fabc9a4ce5607d99803e5b23ca9d5d2c3",
	}
	args := []string{"tdx", "measure", fw, "--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0", "--memory", "2G"}
	out := mustRun(t, append(args, "--acpi-tables", filepath.Join(d, "acpi.bin"))...)
	for i, w := range want {
		if !strings.Contains(out, fmt.Sprintf("rtmr%d %s\n", i, w)) {
			t.Errorf("tdx measure: no rtmr%d %s in\n%s", i, w[:16], out)
		}
	}
	var res struct {
		RTMR0, RTMR1, RTMR2 string
		Events              []struct{ RTMR int }
	}
	js := mustRun(t, append(args, "--memory", "2048", "--acpi-tables", filepath.Join(d, "acpi.bin"), "--json")...)
	if err := json.Unmarshal([]byte(js), &res); err != nil || res.RTMR0 != want[0] || res.RTMR2 != want[2] || len(res.Events) != 20 {
		t.Errorf("tdx measure --json: %v %d events\n%.300s", err, len(res.Events), js)
	}
	if code, out, errs := magectl(t, nil, args...); code != 0 || strings.Contains(out, "rtmr0") || !strings.Contains(out, "rtmr1 "+want[1]) || !strings.Contains(errs, "--acpi-tables") {
		t.Errorf("without ACPI tables: exit %d\n%s%s", code, out, errs)
	}
	for name, c := range map[string]struct {
		args []string
		code int
	}{
		"no memory":      {[]string{"tdx", "measure", fw, "--kernel", kernel, "--append", "x"}, 2},
		"bad memory":     {[]string{"tdx", "measure", fw, "--kernel", kernel, "--append", "x", "--memory", "2Q"}, 2},
		"initrd alone":   {[]string{"tdx", "measure", fw, "--initrd", initrd}, 2},
		"no cmdline":     {[]string{"tdx", "measure", fw, "--kernel", kernel, "--memory", "2G"}, 3},
		"not a PE":       {[]string{"tdx", "measure", fw, "--kernel", initrd, "--append", "x", "--memory", "2G"}, 3},
		"missing kernel": {[]string{"tdx", "measure", fw, "--kernel", filepath.Join(d, "none"), "--append", "x", "--memory", "2G"}, 3},
	} {
		if code, _, errs := magectl(t, nil, c.args...); code != c.code || errs == "" {
			t.Errorf("%s: exit %d (want %d) %s", name, code, c.code, errs)
		}
	}

	td := fmt.Sprintf(`{"name": "grace", "tdx": {"firmware": "OVMF.fd", "kernel": %q, "initrd": %q, "cmdline": "console=ttyS0", "memory": "2G", "acpi_tables": "acpi.bin"}, "output": "grace.table"}`, kernel, initrd)
	gf := filepath.Join(d, "group.json")
	os.WriteFile(gf, []byte(`{"name": "tds", "date": "20261205", "members": [`+heapMember(d, 0)+`, `+td+`]}`), 0o644)
	var man mage.Manifest
	if err := json.Unmarshal([]byte(mustRun(t, "group", "sign", "-q", "--json", gf)), &man); err != nil {
		t.Fatal(err)
	}
	if g := man.Members[1]; g.Kind != "tdx" || len(g.RTMR) != 4 || g.RTMR[0] != want[0] || g.RTMR[1] != want[1] || g.RTMR[2] != want[2] {
		t.Errorf("manifest member: %+v", g)
	}
	if v := mustRun(t, "group", "verify", "--manifest", filepath.Join(d, "group.manifest.json")); !strings.Contains(v, "ok       member 1 tdx") {
		t.Errorf("group verify:\n%s", v)
	}
	// No output may be a direct boot's input, even with --force.
	kcopy := filepath.Join(d, "vmlinuz")
	raw, _ := os.ReadFile(kernel)
	os.WriteFile(kcopy, raw, 0o644)
	os.WriteFile(gf, []byte(`{"name": "tds", "date": "20261205", "members": [`+heapMember(d, 0)+`, `+strings.Replace(td, fmt.Sprintf("%q", kernel), `"vmlinuz"`, 1)+`]}`), 0o644)
	if code, _, errs := magectl(t, nil, "group", "sign", "-q", "--force", "--manifest", kcopy, gf); code != 2 || !strings.Contains(errs, "input") {
		t.Errorf("a manifest over the TD's kernel: exit %d %s", code, errs)
	}
	if got, _ := os.ReadFile(kcopy); !bytes.Equal(got, raw) {
		t.Error("the TD's kernel was overwritten")
	}
	for name, bad := range map[string]string{
		"kernel and event log": strings.Replace(td, `"memory"`, `"event_log": "x", "memory"`, 1),
		"no ACPI tables":       strings.Replace(td, `, "acpi_tables": "acpi.bin"`, "", 1),
		"mrtd only":            strings.Replace(td, `"firmware": "OVMF.fd"`, `"mrtd": "`+strings.Repeat("00", 48)+`"`, 1),
		"memory":               strings.Replace(td, `"2G"`, `"lots"`, 1),
		"initrd alone":         fmt.Sprintf(`{"name": "grace", "tdx": {"firmware": "OVMF.fd", "rtmr": ["%[1]s", "%[1]s", "%[1]s"], "initrd": "x"}, "output": "grace.table"}`, want[0]),
	} {
		os.WriteFile(gf, []byte(`{"name": "tds", "members": [`+bad+`]}`), 0o644)
		if code, _, errs := magectl(t, nil, "group", "sign", "-q", "--force", gf); code == 0 || errs == "" {
			t.Errorf("%s: exit %d %s", name, code, errs)
		}
	}
}
