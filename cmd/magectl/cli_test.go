package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

var vec, _ = filepath.Abs("../../testdata/sgxsdk")

func v(p string) string { return filepath.Join(vec, p) }

// magectl runs the CLI in-process and returns its exit code and output.
func magectl(t *testing.T, envv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{ctx: context.Background(), stdout: &out, stderr: &errb, getenv: func(k string) string { return envv[k] }}
	code := run(e, args)
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := magectl(t, nil, args...)
	if code != 0 {
		t.Fatalf("magectl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s differs from %s", got, filepath.Base(want))
	}
}

func TestCLISignCompat(t *testing.T) {
	d := t.TempDir()
	out := filepath.Join(d, "s2.so")
	mustRun(t, "sign", "-key", v("keys/k2.pem"), "-enclave", v("enclaves/e2_tls_big.so"), "-out", out,
		"-config", v("configs/cB_threads_nodebug.config.xml"), "-cssfile", out+".css", "-dumpfile", out+".dump", "-date", "20261123")
	sameFile(t, out, v("signed/s2_e2_cB.signed.so"))
	sameFile(t, out+".css", v("css/s2_e2_cB.css"))
	sameFile(t, out+".dump", v("dump/s2_e2_cB.dump.txt"))

	// SOURCE_DATE_EPOCH gives the date when -date is absent (2026-11-23).
	out5 := filepath.Join(d, "s5.so")
	if code, _, errs := magectl(t, map[string]string{"SOURCE_DATE_EPOCH": "1795400000"}, "sign", "-key", v("keys/k5.pem"),
		"-enclave", v("enclaves/e1_small.so"), "-out", out5); code != 0 {
		t.Fatal(errs)
	}
	sameFile(t, out5, v("signed/s5_e1_noconfig.signed.so"))

	// Two-step signing.
	mat := filepath.Join(d, "t1.mat")
	mustRun(t, "gendata", "-enclave", v("enclaves/e4_twostep.so"), "-config", v("configs/cE_twostep.config.xml"), "-out", mat, "-date", "20261123")
	sameFile(t, mat, v("gendata/t1_e4_cE.signing_material.bin"))
	t1 := filepath.Join(d, "t1.so")
	mustRun(t, "catsig", "-enclave", v("enclaves/e4_twostep.so"), "-config", v("configs/cE_twostep.config.xml"), "-key", v("keys/k1.pub.pem"),
		"-sig", v("gendata/t1_e4_cE.signature.bin"), "-unsigned", mat, "-out", t1, "-cssfile", t1+".css")
	sameFile(t, t1, v("signed/t1_e4_cE.signed.so"))
	sameFile(t, t1+".css", v("css/t1_e4_cE.css"))
	// catsig with a signature by another key fails as a check (exit 1).
	if code, _, _ := magectl(t, nil, "catsig", "-enclave", v("enclaves/e4_twostep.so"), "-config", v("configs/cE_twostep.config.xml"),
		"-key", v("keys/k2.pub.pem"), "-sig", v("gendata/t1_e4_cE.signature.bin"), "-unsigned", mat, "-out", t1); code != 1 {
		t.Errorf("catsig with the wrong key: exit %d, want 1", code)
	}

	dump := filepath.Join(d, "x.dump")
	mustRun(t, "dump", "-enclave", v("signed/g1_v1.signed.so"), "-dumpfile", dump, "-cssfile", dump+".css")
	sameFile(t, dump, v("dump/g1_v1.dump.txt"))
	sameFile(t, dump+".css", v("css/g1_v1.css"))
}

func TestCLIErrors(t *testing.T) {
	d := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"sign", "-enclave", v("enclaves/e1_small.so"), "-out", filepath.Join(d, "x")}, 2, "-key is required"},
		{[]string{"sign", "-enclave", v("enclaves/e1_small.so"), "-key", v("keys/k1.pem"), "-out", filepath.Join(d, "x"), "-date", "2026-13-23"}, 2, "YYYYMMDD"},
		{[]string{"sign", "-enclave", v("signed/s1_e1_cA.signed.so"), "-key", v("keys/k1.pem"), "-out", filepath.Join(d, "x")}, 3, "already signed"},
		{[]string{"sign", "-enclave", v("keys/k1.pem"), "-key", v("keys/k1.pem"), "-out", filepath.Join(d, "x")}, 3, "not an ELF"},
		{[]string{"sign", "-enclave", v("enclaves/e1_small.so"), "-key", v("keys/k1.pub.pem"), "-out", filepath.Join(d, "x")}, 3, "PEM block"},
		{[]string{"sign", "-enclave", v("enclaves/e1_small.so"), "-key", v("keys/k1.pem"), "-config", v("manifest.json"), "-out", filepath.Join(d, "x")}, 3, "config"},
		{[]string{"measure", "-enclave", v("signed/s1_e1_cA.signed.so"), "-config", v("configs/cA_sample_default.config.xml")}, 2, "signed"},
		{[]string{"nosuch"}, 2, "unknown command"},
		{[]string{"derive", v("signed/s1_e1_cA.signed.so")}, 3, "no .sgx_mage"},
	}
	for _, c := range cases {
		code, _, errs := magectl(t, nil, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("magectl %s: exit %d %q, want exit %d mentioning %q", strings.Join(c.args, " "), code, errs, c.code, c.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "x")); err == nil {
		t.Error("a failed command left an output file")
	}
}

func TestCLIMageFlows(t *testing.T) {
	d := t.TempDir()
	members := []struct{ enclave, config, key, signed string }{
		{"g1_m0", "cG1_group_a", "g1_k0", "g1_v0"},
		{"g1_m1", "cG1_group_b", "g1_k1", "g1_v1"},
		{"g1_m2", "cA_sample_default", "g1_k2", "g1_v2"},
	}
	// The prototype's flow: genmage for each member, then signmage.
	entries := filepath.Join(d, "g1.mage")
	for _, m := range members {
		mustRun(t, "genmage", "-enclave", v("enclaves/"+m.enclave+".so"), "-config", v("configs/"+m.config+".config.xml"),
			"-key", v("keys/"+m.key+".pem"), "-out", filepath.Join(d, "unused"), "-mageout", entries)
	}
	sameFile(t, entries, v("mage/g1.mage.bin"))
	var signed []string
	for _, m := range members {
		out := filepath.Join(d, m.signed+".so")
		mustRun(t, "signmage", "-enclave", v("enclaves/"+m.enclave+".so"), "-config", v("configs/"+m.config+".config.xml"),
			"-key", v("keys/"+m.key+".pem"), "-out", out, "-magein", entries, "-date", "20261123")
		sameFile(t, out, v("signed/"+m.signed+".signed.so"))
		signed = append(signed, out)
	}

	// One command for the group.
	gd := filepath.Join(d, "group")
	os.MkdirAll(gd, 0o755)
	gpath := groupFile(t, gd, "g1.group.json")
	mustRun(t, "group", "sign", "-q", gpath)
	for _, m := range members {
		sameFile(t, filepath.Join(gd, "out", m.signed+".so"), v("signed/"+m.signed+".signed.so"))
	}
	raw, err := os.ReadFile(filepath.Join(gd, "g1.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := mage.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if man.TableSHA256 != "67e5cdb8dabb94197b0dc6a639d43b8b2052afd98c1d7e94aeeef57b5fffb7e8" || len(man.Members) != 3 ||
		man.Members[1].Identity.MRENCLAVE.String() != "eebb00712d8baaa4ef780b773203f602bae9e2a4604e881730a3481a9dcbab4d" || man.Members[1].Identity.ISVProdID != 101 {
		t.Errorf("group.json: %s", raw)
	}
	// Outputs are not overwritten without -force.
	if code, _, errs := magectl(t, nil, "group", "sign", "-q", gpath); code != 3 || !strings.Contains(errs, "-force") {
		t.Errorf("second group sign: exit %d %s", code, errs)
	}
	mustRun(t, "group", "sign", "-q", "-force", gpath)

	// Derivation and verification.
	out := mustRun(t, "derive", "--json", signed[0])
	var dr deriveResult
	if err := json.Unmarshal([]byte(out), &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Self != 0 || len(dr.Members) != 3 || dr.Members[2].String() != "b845e6c976f57650aae5c4109a47c71f0c56a86c193ba9f8096d0b7aca0a0340" {
		t.Errorf("derive: %s", out)
	}
	mustRun(t, "derive", "--trust", "eebb00712d8baaa4ef780b773203f602bae9e2a4604e881730a3481a9dcbab4d", signed[1])
	if code, _, _ := magectl(t, nil, "derive", "--trust", "eebb00712d8baaa4ef780b773203f602bae9e2a4604e881730a3481a9dcbab4d", signed[0]); code != 1 {
		t.Errorf("derive --trust with another member's MRENCLAVE: exit %d, want 1", code)
	}
	mustRun(t, "group", "verify", signed[0], signed[1], signed[2])
	// A member of another group does not verify with g1.
	code, vout, _ := magectl(t, nil, "group", "verify", signed[0], v("signed/g2_v3.signed.so"))
	if code != 1 || !strings.Contains(vout, "does not derive") {
		t.Errorf("mixed groups: exit %d\n%s", code, vout)
	}
}

func TestCLIKeygen(t *testing.T) {
	if testing.Short() {
		t.Skip("key generation")
	}
	d := t.TempDir()
	k := filepath.Join(d, "k.pem")
	mustRun(t, "keygen", "-out", k, "-pubout", k+".pub")
	st, err := os.Stat(k)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	if code, _, _ := magectl(t, nil, "keygen", "-out", k); code != 3 {
		t.Errorf("keygen over an existing key: exit %d, want 3", code)
	}
	out := filepath.Join(d, "x.so")
	mustRun(t, "sign", "-key", k, "-enclave", v("enclaves/e1_small.so"), "-out", out)
	if o := mustRun(t, "measure", "--json", "-enclave", out); !strings.Contains(o, `"match": true`) {
		t.Error(o)
	}
}

func TestCLIQuote(t *testing.T) {
	d := "../../dcap/testdata/phala-dcap-qvl/"
	if out := mustRun(t, "quote", "show", "--json", d+"sgx_quote"); !strings.Contains(out, `"fmspc": "00A067110000"`) {
		t.Error(out)
	}
	out := mustRun(t, "quote", "verify", d+"sgx_quote", "--collateral", d+"sgx_quote_collateral.json", "--time", "2025-06-20T00:00:00Z",
		"--accept", "ConfigurationAndSWHardeningNeeded", "--json")
	if !strings.Contains(out, `"tcb_status": "ConfigurationAndSWHardeningNeeded"`) || !strings.Contains(out, "INTEL-SA-00615") {
		t.Error(out)
	}
}

func TestCLIQuoteRefusals(t *testing.T) {
	d := "../../dcap/testdata/phala-dcap-qvl/"
	if code, _, _ := magectl(t, nil, "quote", "verify", d+"sgx_quote", "--collateral", d+"sgx_quote_collateral.json", "--time", "2025-06-20T00:00:00Z"); code != 1 {
		t.Errorf("default policy: exit %d, want 1 (status not UpToDate)", code)
	}
	if code, _, _ := magectl(t, nil, "quote", "verify", d+"sgx_quote"); code != 2 {
		t.Errorf("no collateral: exit %d, want 2", code)
	}
	if code, _, _ := magectl(t, nil, "quote", "show", d+"sgx_quote_collateral.json"); code != 3 {
		t.Errorf("not a quote: exit %d, want 3", code)
	}
}

func TestCLISim(t *testing.T) {
	d := t.TempDir()
	out := mustRun(t, "sim", "load", "-platform", d, v("signed/g2_v4.signed.so"))
	if !strings.Contains(out, "MAGE member 4 of 10") || !strings.Contains(out, "27e1fa5b56cf00bc") {
		t.Error(out)
	}
	if code, _, errs := magectl(t, nil, "sim", "load", "-platform", d, "-debug", v("signed/s2_e2_cB.signed.so")); code != 1 || !strings.Contains(errs, "EINIT") {
		t.Errorf("debug launch of a DisableDebug enclave: exit %d %s", code, errs)
	}
	if out := mustRun(t, "sim", "root", "-platform", d); !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Error(out)
	}
}

// brokenSignature writes a copy of a signed member whose SIGSTRUCT
// signature (every copy in the metadata) has one byte flipped.
func brokenSignature(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sgxsdk.ParseSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	css := s.Sigstruct().Marshal()
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], css)
		if i < 0 {
			break
		}
		b[off+i+128+384+4+10] ^= 1 // a byte of the RSA signature
		off, n = off+i+len(css), n+1
	}
	if n == 0 {
		t.Fatal("no SIGSTRUCT found")
	}
	out := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCLIChecksSignatures: no command reports on a signed file whose
// SIGSTRUCT does not verify as if it were good, and derive finds "self" by
// the replayed measurement; a file not in its own table is a failed check.
// (Issue 9, item 16.)
func TestCLIChecksSignatures(t *testing.T) {
	bad := brokenSignature(t, v("signed/g1_v0.signed.so"))
	for _, args := range [][]string{
		{"measure", "-enclave", bad},
		{"measure", "--json", "-enclave", bad},
		{"group", "verify", bad, v("signed/g1_v1.signed.so"), v("signed/g1_v2.signed.so")},
		{"derive", bad},
		{"sim", "load", "-platform", t.TempDir(), bad},
	} {
		code, out, errs := magectl(t, nil, args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1 (a failed check)\n%s%s", args, code, out, errs)
		}
		// "match" compares MRENCLAVEs only; the signature is judged apart,
		// and no identity is shown as a result.
		if strings.Contains(out, "(match)") || strings.Contains(out, "\"signature_valid\": true") || strings.Contains(out, "\"identity\"") || strings.Contains(out, "ok       member 0") {
			t.Errorf("%v reports a broken SIGSTRUCT as good:\n%s", args, out)
		}
	}

	// A signed member whose table does not hold it: signed alone with
	// sign, its .sgx_mage section is an empty table.
	lone := filepath.Join(t.TempDir(), "lone.so")
	mustRun(t, "sign", "-key", v("keys/g1_k0.pem"), "-enclave", v("enclaves/g1_m0.so"), "-config", v("configs/cG1_group_a.config.xml"), "-out", lone, "-date", "20261123")
	code, out, errs := magectl(t, nil, "derive", lone)
	if code != 1 || !strings.Contains(errs, "not in its table") || strings.Contains(out, "member -1") {
		t.Errorf("derive of a file not in its own table: exit %d\n%s%s", code, out, errs)
	}
}

// groupFile writes a g1 group file named name in dir, with outputs under
// out/, and returns its path.
func groupFile(t *testing.T, dir, name string) string {
	t.Helper()
	members := []struct{ enclave, config, key, signed string }{
		{"g1_m0", "cG1_group_a", "g1_k0", "g1_v0"},
		{"g1_m1", "cG1_group_b", "g1_k1", "g1_v1"},
		{"g1_m2", "cA_sample_default", "g1_k2", "g1_v2"},
	}
	var gf strings.Builder
	gf.WriteString(`{"name": "g1", "date": "20261123", "members": [`)
	for i, m := range members {
		if i > 0 {
			gf.WriteString(",")
		}
		fmt.Fprintf(&gf, `{"name": %q, "enclave": %q, "config": %q, "key": %q, "output": "out/%s.so"}`,
			m.enclave, v("enclaves/"+m.enclave+".so"), v("configs/"+m.config+".config.xml"), v("keys/"+m.key+".pem"), m.signed)
	}
	gf.WriteString("]}")
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(gf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCLIOutputs: outputs go through links to their targets, into devices
// and to "-" (standard output), missing folders are created, and no command
// writes over one of its inputs, even with -force. (Issue 9, items 14-15.)
func TestCLIOutputs(t *testing.T) {
	d := t.TempDir()
	sign := func(extra ...string) (int, string, string) {
		return magectl(t, nil, append([]string{"sign", "-key", v("keys/k2.pem"), "-enclave", v("enclaves/e2_tls_big.so"),
			"-config", v("configs/cB_threads_nodebug.config.xml"), "-date", "20261123"}, extra...)...)
	}
	// "-" is standard output.
	code, out, errs := sign("-out", filepath.Join(d, "s2.so"), "-cssfile", "-")
	want, _ := os.ReadFile(v("css/s2_e2_cB.css"))
	if code != 0 || out != string(want) {
		t.Errorf("-cssfile -: exit %d, %d bytes on stdout, want the %d-byte SIGSTRUCT (%s)", code, len(out), len(want), errs)
	}
	// Through a link, to its target; the link stays.
	os.WriteFile(filepath.Join(d, "real.so"), nil, 0o644)
	os.Symlink("real.so", filepath.Join(d, "link.so"))
	if code, _, errs := sign("-out", filepath.Join(d, "link.so")); code != 0 {
		t.Fatal(errs)
	}
	if fi, _ := os.Lstat(filepath.Join(d, "link.so")); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the output link was replaced by a regular file")
	}
	sameFile(t, filepath.Join(d, "real.so"), v("signed/s2_e2_cB.signed.so"))
	// Into a device.
	if code, _, errs := sign("-out", "/dev/null"); code != 0 {
		t.Errorf("-out /dev/null: %s", errs)
	}
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Fatal("/dev/null was replaced")
	}
	// Missing folders are created.
	if code, _, errs := sign("-out", filepath.Join(d, "new", "dir", "s2.so")); code != 0 {
		t.Errorf("output in a missing folder: %s", errs)
	}
	// An output that is an input is refused, by path or through a link.
	cp := filepath.Join(d, "e2.so")
	orig, _ := os.ReadFile(v("enclaves/e2_tls_big.so"))
	os.WriteFile(cp, orig, 0o644)
	os.Symlink("e2.so", filepath.Join(d, "e2link.so"))
	for _, outp := range []string{cp, filepath.Join(d, "e2link.so"), filepath.Join(d, ".", "e2.so")} {
		code, _, errs := magectl(t, nil, "sign", "-key", v("keys/k2.pem"), "-enclave", cp, "-out", outp, "-date", "20261123")
		if code != 2 || !strings.Contains(errs, "also an input") {
			t.Errorf("sign -out %s over its input: exit %d %s", outp, code, errs)
		}
	}
	if b, _ := os.ReadFile(cp); !bytes.Equal(b, orig) {
		t.Fatal("the input was modified")
	}

	// group sign with --manifest naming its own group file: refused, even
	// with --force.
	gd := filepath.Join(d, "g")
	os.MkdirAll(gd, 0o755)
	gpath := groupFile(t, gd, "group.json")
	before, _ := os.ReadFile(gpath)
	code, _, errs = magectl(t, nil, "group", "sign", "-q", "-force", "--manifest", gpath, gpath)
	if code != 2 || !strings.Contains(errs, "also an input") || !strings.HasPrefix(errs, "magectl group sign: ") {
		t.Errorf("group sign over its own group file: exit %d %s", code, errs)
	}
	if after, _ := os.ReadFile(gpath); !bytes.Equal(before, after) {
		t.Fatal("group sign overwrote its input")
	}
	// With another manifest name it works, creating out/.
	mustRun(t, "group", "sign", "-q", "-manifest", filepath.Join(gd, "manifest.json"), gpath)
	sameFile(t, filepath.Join(gd, "out", "g1_v1.so"), v("signed/g1_v1.signed.so"))
	if strings.Contains(errs, ".tmp") {
		t.Errorf("an error names a temporary file: %s", errs)
	}
}

// TestCLIHelpAndExitCodes: --help exits 0 everywhere and shows the
// command's own flags; exit codes and error prefixes are the same in every
// command. (Issue 9, item 17.)
func TestCLIHelpAndExitCodes(t *testing.T) {
	for _, c := range [][]string{{"sign"}, {"gendata"}, {"catsig"}, {"dump"}, {"genmage"}, {"signmage"}, {"measure"}, {"keygen"},
		{"group"}, {"group", "sign"}, {"group", "verify"}, {"derive"}, {"sim"}, {"sim", "load"}, {"sim", "root"},
		{"quote"}, {"quote", "show"}, {"quote", "verify"}, {"demo"}} {
		code, out, errs := magectl(t, nil, append(c, "--help")...)
		if code != 0 || !strings.Contains(out+errs, "Usage: magectl "+strings.Join(c, " ")) {
			t.Errorf("%v --help: exit %d\n%s%s", c, code, out, errs)
		}
	}
	if _, out, errs := magectl(t, nil, "sim", "root", "--help"); strings.Contains(out+errs, "-debug") {
		t.Errorf("sim root --help shows load's flags:\n%s", out+errs)
	}
	unsigned := v("enclaves/e1_small.so")
	for _, c := range [][]string{{"derive", unsigned}, {"sim", "load", "-platform", t.TempDir(), unsigned}, {"group", "verify", unsigned}} {
		code, _, errs := magectl(t, nil, c...)
		want := "magectl " + strings.Join(c[:1], " ")
		if c[0] != "derive" {
			want = "magectl " + strings.Join(c[:2], " ")
		}
		if code != 3 || !strings.HasPrefix(errs, want+": ") {
			t.Errorf("%v on an unsigned file: exit %d, want 3 and prefix %q: %s", c, code, want, errs)
		}
	}
}

// TestCLIIdentityJSON: one JSON shape for an enclave's identity in every
// command, and group.json read back to check signed files against it.
// (Issue 9, items 18-19.)
func TestCLIIdentityJSON(t *testing.T) {
	d := t.TempDir()
	gpath := groupFile(t, d, "g1.group.json")
	mustRun(t, "group", "sign", "-q", gpath)
	raw, _ := os.ReadFile(filepath.Join(d, "g1.manifest.json"))
	man, err := mage.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	member := filepath.Join(d, "out", "g1_v1.so")
	identityOf := func(out string, path ...string) string {
		t.Helper()
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, k := range path {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				i, _ := strconv.Atoi(k)
				v = x[i]
			default:
				t.Fatalf("no %q in %s", k, out)
			}
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	want := identityOf(string(raw), "members", "1", "identity")
	for name, got := range map[string]string{
		"measure": identityOf(mustRun(t, "measure", "--json", member), "identity"),
		"derive":  identityOf(mustRun(t, "derive", "--json", member), "identity"),
	} {
		if got != want {
			t.Errorf("%s identity:\n%s\nwant (group.json):\n%s", name, got, want)
		}
	}
	// The launched enclave: the same shape; XFRM is the platform's choice
	// under the SIGSTRUCT's mask.
	launched := identityOf(mustRun(t, "sim", "load", "--json", "-platform", t.TempDir(), member), "identity")
	if strings.Replace(launched, `"xfrm":"0x0000000000000007"`, `"xfrm":"0x0000000000000003"`, 1) != want {
		t.Errorf("sim load identity:\n%s\nwant (group.json, but XFRM):\n%s", launched, want)
	}
	if !strings.Contains(want, `"attributes":{"flags":"0x0000000000000005","xfrm":"0x0000000000000003"}`) {
		t.Errorf("attributes shape: %s", want)
	}
	// A failed verification does not present the unverified MRENCLAVE as
	// a result.
	bad := brokenSignature(t, member)
	if _, out, _ := magectl(t, nil, "measure", "--json", bad); strings.Contains(out, `"identity"`) {
		t.Errorf("measure --json of a broken SIGSTRUCT shows an identity:\n%s", out)
	}

	// group verify --manifest: the signed files against group.json.
	files := []string{filepath.Join(d, "out", "g1_v0.so"), member, filepath.Join(d, "out", "g1_v2.so")}
	mustRun(t, append([]string{"group", "verify", "--manifest", filepath.Join(d, "g1.manifest.json")}, files...)...)
	man.Members[1].Identity.ISVSVN++ // a manifest that disagrees with the files
	tampered, _ := json.Marshal(man)
	tp := filepath.Join(d, "tampered.json")
	os.WriteFile(tp, tampered, 0o644)
	if code, out, _ := magectl(t, nil, append([]string{"group", "verify", "--manifest", tp}, files...)...); code != 1 || !strings.Contains(out, "differs from the manifest") {
		t.Errorf("group verify against a wrong manifest: exit %d\n%s", code, out)
	}
	// A per-member date is refused with a clear message.
	perMember := strings.Replace(mustReadString(t, gpath), `"output": "out/g1_v0.so"`, `"output": "out/g1_v0.so", "date": "20250101"`, 1)
	pm := filepath.Join(d, "per-member.json")
	os.WriteFile(pm, []byte(perMember), 0o644)
	if code, _, errs := magectl(t, nil, "group", "sign", "-q", "-manifest", filepath.Join(d, "m2.json"), pm); code != 3 || !strings.Contains(errs, "per group, not per member") {
		t.Errorf("per-member date: exit %d %s", code, errs)
	}
}

func mustReadString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCLIGroupTwoStep: group gendata, signatures made elsewhere (here with
// the members' keys, as an HSM would), then group catsig give the same
// members, byte for byte, as group sign. (Issue 13, two-step flow.)
func TestCLIGroupTwoStep(t *testing.T) {
	d := t.TempDir()
	gpath := groupFile(t, d, "g1.group.json")
	mat := filepath.Join(d, "material")
	mustRun(t, "group", "gendata", "--out", mat, gpath)
	raw, _ := os.ReadFile(gpath)
	var gf struct {
		Members []struct{ Name, Key string } `json:"members"`
	}
	json.Unmarshal(raw, &gf)
	for i, m := range gf.Members {
		material, sigPath := materialName(mat, i, m.Name)
		b, err := os.ReadFile(material)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := os.ReadFile(m.Key)
		key, err := sgx.LoadSigningKey(kb)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(sigPath, sig, 0o644)
	}
	mustRun(t, "group", "catsig", "-q", "--sigs", mat, gpath)
	for _, s := range []string{"g1_v0", "g1_v1", "g1_v2"} {
		sameFile(t, filepath.Join(d, "out", s+".so"), v("signed/"+s+".signed.so"))
	}
	// A signature by the wrong key is a failed check, and nothing is written.
	os.RemoveAll(filepath.Join(d, "out"))
	os.Remove(filepath.Join(d, "g1.manifest.json"))
	_, sig1 := materialName(mat, 1, gf.Members[1].Name)
	_, sig0 := materialName(mat, 0, gf.Members[0].Name)
	b0, _ := os.ReadFile(sig0)
	os.WriteFile(sig1, b0, 0o644)
	if code, _, errs := magectl(t, nil, "group", "catsig", "-q", "--sigs", mat, gpath); code != 1 {
		t.Errorf("catsig with a wrong signature: exit %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(d, "out", "g1_v0.so")); err == nil {
		t.Error("a failed group catsig left outputs")
	}
}

// heapMember writes a config giving g1_m0 a heap of its own (so member i
// is distinct) in dir, and returns member i's group file entry.
func heapMember(dir string, i int) string {
	cfg := filepath.Join(dir, fmt.Sprintf("c%d.xml", i))
	os.WriteFile(cfg, fmt.Appendf(nil, "<EnclaveConfiguration><HeapMaxSize>%#x</HeapMaxSize></EnclaveConfiguration>", 0x100000+i*0x1000), 0o644)
	return fmt.Sprintf(`{"name": "m%d", "enclave": %q, "config": %q, "key": %q, "output": "out/m%d.so"}`, i, v("enclaves/g1_m0.so"), cfg, v("keys/g1_k0.pem"), i)
}

// TestCLIMerkleGroup: group sign --table merkle writes one-page tables and
// a proof beside each member; group verify checks every member's proof
// against every member's table; derive --proof derives a peer; a swapped
// proof is refused. (Issue 14.)
func TestCLIMerkleGroup(t *testing.T) {
	d := t.TempDir()
	var members []string
	for i := range 12 {
		members = append(members, heapMember(d, i))
	}
	gf := filepath.Join(d, "g.json")
	os.WriteFile(gf, []byte(`{"name": "big", "date": "20261125", "members": [`+strings.Join(members, ",")+`]}`), 0o644)
	mustRun(t, "group", "sign", "-q", "--table", "merkle", gf)
	man, err := mage.LoadManifest(filepath.Join(d, "g.manifest.json"))
	if err != nil || man.Format != "merkle" || man.SectionSize != 4096 {
		t.Fatalf("group.json: %+v %v", man, err)
	}
	var files []string
	for i := range 12 {
		files = append(files, filepath.Join(d, "out", fmt.Sprintf("m%d.so", i)))
	}
	out := mustRun(t, append([]string{"group", "verify", "--manifest", filepath.Join(d, "g.manifest.json")}, files...)...)
	if strings.Contains(out, "problem") || strings.Contains(out, "MISMATCH") {
		t.Errorf("group verify:\n%s", out)
	}
	var dr deriveResult
	if err := json.Unmarshal([]byte(mustRun(t, "derive", "--json", "--proof", files[5]+".proof", files[0])), &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Self != 0 || dr.GroupSize != 12 || len(dr.Proven) != 1 || dr.Proven[0].Index != 5 || dr.Proven[0].MRENCLAVE != man.Members[5].Identity.MRENCLAVE {
		t.Errorf("derive --proof: %+v", dr)
	}
	// Swap two members' proofs: each is refused.
	p3, _ := os.ReadFile(files[3] + ".proof")
	p4, _ := os.ReadFile(files[4] + ".proof")
	os.WriteFile(files[3]+".proof", p4, 0o644)
	os.WriteFile(files[4]+".proof", p3, 0o644)
	if code, _, _ := magectl(t, nil, "derive", files[3]); code != 1 {
		t.Errorf("derive with another member's proof: exit %d, want 1", code)
	}
	if code, out, _ := magectl(t, nil, append([]string{"group", "verify"}, files...)...); code != 1 || !strings.Contains(out, "problem") {
		t.Errorf("group verify with swapped proofs: exit %d\n%s", code, out)
	}
}

// TestCLIRollingUpdate: keygen --update-key, an updatable group, and a
// successor that keeps three members, adds one and drops two; group verify
// across the epochs, derive from the new proofs, and the refusals. (Issue
// 14.)
func TestCLIRollingUpdate(t *testing.T) {
	d := t.TempDir()
	member := func(i int) string { return heapMember(d, i) }
	upd, other := filepath.Join(d, "upd.pem"), filepath.Join(d, "other.pem")
	mustRun(t, "keygen", "--update-key", "-out", upd, "-pubout", upd+".pub")
	mustRun(t, "keygen", "--update-key", "-out", other)
	os.MkdirAll(filepath.Join(d, "v0"), 0o755)
	os.MkdirAll(filepath.Join(d, "v1"), 0o755)
	var ms []string
	for i := range 5 {
		ms = append(ms, member(i))
	}
	g0 := filepath.Join(d, "v0", "g.json")
	os.WriteFile(g0, []byte(`{"name": "rolling", "date": "20261130", "members": [`+strings.Join(ms, ",")+`]}`), 0o644)
	mustRun(t, "group", "sign", "-q", "--table", "merkle", "--update-key", upd+".pub", g0)
	man0 := filepath.Join(d, "v0", "g.manifest.json")
	m0, err := mage.LoadManifest(man0)
	if err != nil || m0.UpdateKey == "" || m0.Epoch != 0 || m0.Lineage != "g.manifest.lineage" {
		t.Fatalf("epoch 0 manifest: %+v %v", m0, err)
	}
	if out := mustRun(t, "group", "verify", "--manifest", man0); strings.Contains(out, "problem") {
		t.Fatalf("group verify, epoch 0:\n%s", out)
	}

	g1 := filepath.Join(d, "v1", "g.json")
	os.WriteFile(g1, []byte(`{"name": "rolling", "date": "20261130", "members": [
		{"name": "m0", "keep": true}, {"name": "m1", "keep": true}, {"name": "m2", "keep": true}, `+member(5)+`]}`), 0o644)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"group", "sign", "-q", g1}, 2},                                                                   // kept members without a predecessor
		{[]string{"group", "sign", "-q", "--predecessor", man0, g1}, 2},                                            // no update key
		{[]string{"group", "sign", "-q", "--predecessor", man0, "--update-key", upd + ".pub", g1}, 2},              // a public key cannot sign
		{[]string{"group", "sign", "-q", "--predecessor", man0, "--table", "classic", "--update-key", upd, g1}, 2}, // a classic successor
		{[]string{"group", "sign", "-q", "--predecessor", man0, "--update-key", other, g1}, 3},                     // the wrong key
	} {
		if code, _, errs := magectl(t, nil, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "v1", "g.manifest.json")); err == nil {
		t.Fatal("a refused successor left its manifest")
	}
	mustRun(t, "group", "sign", "-q", "--predecessor", man0, "--update-key", upd, g1)
	man1 := filepath.Join(d, "v1", "g.manifest.json")
	m1, err := mage.LoadManifest(man1)
	if err != nil || m1.Epoch != 1 || len(m1.Members) != 4 || !m1.Members[0].Kept || m1.Members[3].Kept || m1.Members[3].Name != "m5" {
		t.Fatalf("epoch 1 manifest: %+v %v", m1, err)
	}
	for i := range 3 {
		if m1.Members[i].File != m0.Members[i].File || m1.Members[i].Identity != m0.Members[i].Identity {
			t.Errorf("kept member %d: %+v, was %+v", i, m1.Members[i], m0.Members[i])
		}
	}
	out := mustRun(t, "group", "verify", "--manifest", man1)
	if strings.Contains(out, "problem") || !strings.Contains(out, "epoch 1") {
		t.Fatalf("group verify, epoch 1:\n%s", out)
	}
	// The kept m0 (its epoch-0 file, its new proof) derives the new m5.
	var dr deriveResult
	if err := json.Unmarshal([]byte(mustRun(t, "derive", "--json", "--self-proof", m1.Members[0].Proof, "--proof", m1.Members[3].Proof, m0.Members[0].File)), &dr); err != nil {
		t.Fatal(err)
	}
	if dr.Epoch == nil || *dr.Epoch != 1 || dr.GroupSize != 4 || len(dr.Proven) != 1 || dr.Proven[0].Index != 3 || dr.Proven[0].MRENCLAVE != m1.Members[3].Identity.MRENCLAVE {
		t.Errorf("derive across epochs: %+v", dr)
	}
	// The dropped m3 is refused by a member that knows epoch 1, also
	// among the members group verify is given.
	if code, _, _ := magectl(t, nil, "derive", "--self-proof", m1.Members[0].Proof, "--proof", m0.Members[3].Proof, m0.Members[0].File); code != 1 {
		t.Errorf("derive of a dropped member: exit %d, want 1", code)
	}
	files := []string{m0.Members[3].File}
	for _, mm := range m1.Members {
		files = append(files, mm.File)
	}
	if code, out, _ := magectl(t, nil, append([]string{"group", "verify", "--manifest", man1}, files...)...); code != 1 || !strings.Contains(out, "problem") {
		t.Errorf("group verify with a dropped member: exit %d\n%s", code, out)
	}
	// Rotate the update key, then end the lineage.
	successor := func(from, to string, extra ...string) (int, string) {
		t.Helper()
		dir := filepath.Join(d, to)
		os.MkdirAll(dir, 0o755)
		cfg := filepath.Join(dir, "g.json")
		os.WriteFile(cfg, []byte(`{"name": "rolling", "date": "20261130", "members": [{"name": "m0", "keep": true}, `+member(6+len(to))+`]}`), 0o644)
		code, _, errs := magectl(t, nil, append(append([]string{"group", "sign", "-q", "--predecessor", filepath.Join(d, from, "g.manifest.json")}, extra...), cfg)...)
		return code, errs
	}
	if code, errs := successor("v1", "v2", "--update-key", upd, "--next-update-key", other); code != 0 {
		t.Fatalf("rotating the update key: exit %d %s", code, errs)
	}
	if code, _ := successor("v2", "v3", "--update-key", upd); code != 3 {
		t.Errorf("a successor signed with the retired key: exit %d, want 3", code)
	}
	if code, errs := successor("v2", "v33", "--update-key", other, "--next-update-key", "none"); code != 0 {
		t.Fatalf("a final successor: exit %d %s", code, errs)
	}
	if code, errs := successor("v33", "v444", "--update-key", other); code != 1 || !strings.Contains(errs, "final") {
		t.Errorf("a successor of a final group: exit %d %s", code, errs)
	}
	if out := mustRun(t, "group", "verify", "--manifest", filepath.Join(d, "v33", "g.manifest.json")); !strings.Contains(out, "epoch 3") {
		t.Errorf("group verify, epoch 3:\n%s", out)
	}
	// The epoch-1 members are not the epoch-0 manifest's group.
	if code, out, _ := magectl(t, nil, append([]string{"group", "verify", "--manifest", man0}, files[1:]...)...); code != 1 || !strings.Contains(out, "epoch") {
		t.Errorf("group verify against the older manifest: exit %d\n%s", code, out)
	}
}
