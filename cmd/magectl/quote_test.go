package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
)

const phalaDir = "../../dcap/testdata/phala-dcap-qvl/"
const testPKIDir = "../../dcap/testdata/intel-qvl-sampledata-TESTPKI/"

func TestCLIQuoteShow(t *testing.T) {
	// Flags after the positional argument work too.
	out := mustRun(t, "quote", "show", phalaDir+"sgx_quote", "--json")
	for _, want := range []string{`"fmspc": "00A067110000"`, `"mrenclave": "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"`, `"isvsvn": 10`, `"certification_data_type": 5`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	out = mustRun(t, "quote", "show", testPKIDir+"quote.dat")
	if !strings.Contains(out, "certification data type 1: PPID 8461863bb7ece31f64c8e9b77fd31cad") {
		t.Error(out)
	}
}

func TestCLIQuoteVerifyFiles(t *testing.T) {
	d := t.TempDir()
	chain := filepath.Join(d, "pck_chain.pem")
	a, _ := os.ReadFile(testPKIDir + "pckCert.pem")
	b, _ := os.ReadFile(testPKIDir + "pckSignChain.pem")
	if err := os.WriteFile(chain, append(a, b...), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"quote", "verify", testPKIDir + "quote.dat", "--tcb-info", testPKIDir + "tcbInfo.json", "--qe-identity", testPKIDir + "qeIdentity.json",
		"--pck-crl", testPKIDir + "intermediateCaCrl.der", "--root-crl", testPKIDir + "rootCaCrl.pem", "--tcb-info-issuer-chain", testPKIDir + "tcbSignChain.pem",
		"--pck-chain", chain, "--time", "2020-01-01T00:00:00Z"}
	// The TEST root must be given; the default (Intel's) refuses.
	if code, out, _ := magectl(t, nil, args...); code != 1 || !strings.Contains(out, "fail pck_chain") || !strings.Contains(out, "skip tcb_status") {
		t.Errorf("real root: exit %d\n%s", code, out)
	}
	out := mustRun(t, append(args, "--root", testPKIDir+"trustedRootCaCert.pem")...)
	if !strings.Contains(out, "pass tcb_status") || !strings.Contains(out, "TCB status UpToDate") {
		t.Error(out)
	}
	// Signatures only, with the test root chosen explicitly.
	out = mustRun(t, "quote", "verify", "--no-collateral", "--root", testPKIDir+"trustedRootCaCert.pem", "--pck-chain", chain, "--time", "2020-01-01T00:00:00Z", testPKIDir+"quote.dat")
	if !strings.Contains(out, "pass quote_signature") || !strings.Contains(out, "WARNING") {
		t.Error(out)
	}
}

func TestCLIQuoteVerifyUsage(t *testing.T) {
	q := phalaDir + "sgx_quote"
	col := phalaDir + "sgx_quote_collateral.json"
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown status", []string{q, "--collateral", col, "--accept", "Fine"}, 2},
		{"Revoked accepted", []string{q, "--collateral", col, "--accept", "Revoked"}, 2},
		{"bad time", []string{q, "--collateral", col, "--time", "yesterday"}, 2},
		{"no-collateral without root", []string{q, "--no-collateral"}, 2},
		{"bundle and files", []string{q, "--collateral", col, "--pck-crl", col}, 2},
		{"two quotes", []string{q, q, "--collateral", col}, 2},
		{"missing quote file", []string{phalaDir + "nonexistent", "--collateral", col}, 3},
		{"bundle is not a bundle", []string{q, "--collateral", q}, 3},
		{"expired collateral", []string{q, "--collateral", col, "--accept", "ConfigurationAndSWHardeningNeeded", "--time", "2026-01-01T00:00:00Z"}, 1},
		{"ok", []string{q, "--collateral", col, "--accept", "UpToDate, ConfigurationAndSWHardeningNeeded", "--time", "2025-06-20T00:00:00Z"}, 0},
	} {
		if code, _, errs := magectl(t, nil, append([]string{"quote", "verify"}, c.args...)...); code != c.code {
			t.Errorf("%s: exit %d, want %d (%s)", c.name, code, c.code, errs)
		}
	}
	code, out, _ := magectl(t, nil, "quote", "verify", "--help")
	if code != 0 {
		t.Errorf("--help: exit %d", code)
	}
	_ = out
}

// TestCLICollateral: quote verify with a PCCS URL, collateral fetch into a
// bundle and quote verify with that bundle give the same result; the
// quote may come as hex, base64 or on standard input; the expected values
// are checked; a PCK chain without its CA is refused with a hint. (Issue
// 12.)
func TestCLICollateral(t *testing.T) {
	b, _ := os.ReadFile(phalaDir + "sgx_quote_collateral.json")
	col, err := dcap.ParseCollateralBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	srv := dcaptest.NewServer(col, "00A067110000")
	defer srv.Close()
	d := t.TempDir()
	at := []string{"--time", "2025-06-20T00:00:00Z", "--accept", "ConfigurationAndSWHardeningNeeded"}
	q := phalaDir + "sgx_quote"
	online := mustRun(t, append([]string{"quote", "verify", "--json", "--pccs", srv.BaseURL(), "--insecure-http", q}, at...)...)
	bundle := filepath.Join(d, "bundle.json")
	mustRun(t, "collateral", "fetch", q, "--pccs", srv.BaseURL(), "--insecure-http", "--out", bundle)
	offline := mustRun(t, append([]string{"quote", "verify", "--json", "--collateral", bundle, q}, at...)...)
	if online != offline || !strings.Contains(online, `"ok": true`) {
		t.Errorf("--pccs and a fetched bundle differ:\n%s\n%s", online, offline)
	}
	// Outside the window: refused (exit 1).
	if code, _, _ := magectl(t, nil, "quote", "verify", "--pccs", srv.BaseURL(), "--insecure-http", "--time", "2025-09-01T00:00:00Z", "--accept", "ConfigurationAndSWHardeningNeeded", q); code != 1 {
		t.Errorf("outside the window: exit %d", code)
	}
	// A cache directory: the second verification makes no request.
	cache := filepath.Join(d, "cache")
	mustRun(t, append([]string{"quote", "verify", "--pccs", srv.BaseURL(), "--insecure-http", "--cache", cache, q}, at...)...)
	n := srv.Requests()["/tcb"]
	mustRun(t, append([]string{"quote", "verify", "--pccs", srv.BaseURL(), "--insecure-http", "--cache", cache, q}, at...)...)
	if srv.Requests()["/tcb"] != n {
		t.Error("--cache fetched again")
	}

	// Encodings.
	raw, _ := os.ReadFile(q)
	for name, text := range map[string]string{
		"hex":    hex.EncodeToString(raw),
		"0x hex": "0x" + hex.EncodeToString(raw) + "\n",
		"base64": base64.StdEncoding.EncodeToString(raw),
	} {
		p := filepath.Join(d, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, []byte(text), 0o644)
		if code, out, errs := magectl(t, nil, append([]string{"quote", "verify", "--collateral", bundle, p}, at...)...); code != 0 {
			t.Errorf("%s quote: exit %d %s%s", name, code, out, errs)
		}
	}
	var out, errb bytes.Buffer
	e := &env{ctx: context.Background(), stdin: bytes.NewReader(raw), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := run(e, append([]string{"quote", "verify", "--collateral", bundle, "-"}, at...)); code != 0 {
		t.Errorf("quote on stdin: exit %d %s", code, errb.String())
	}

	// Expected values.
	for _, c := range []struct {
		flags []string
		code  int
	}{
		{[]string{"--mrenclave", "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb", "--isvprodid", "0", "--report-data", hex.EncodeToString([]byte("Hello"))}, 0},
		{[]string{"--mrenclave", strings.Repeat("00", 32)}, 1},
		{[]string{"--mrsigner", strings.Repeat("00", 32)}, 1},
		{[]string{"--min-isvsvn", "1"}, 1},
		{[]string{"--min-tcb-eval", "17"}, 0},
		{[]string{"--min-tcb-eval", "18"}, 1},
		{[]string{"--accept-advisory", "INTEL-SA-00289,INTEL-SA-00615"}, 0},
		{[]string{"--accept-advisory", "INTEL-SA-00615"}, 1},
		{[]string{"--mrenclave", "nothex"}, 2},
	} {
		args := append(append([]string{"quote", "verify", "--collateral", bundle, q}, at...), c.flags...)
		if code, out, errs := magectl(t, nil, args...); code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.flags, code, c.code, out, errs)
		}
	}

	// A PCK chain of the leaf alone.
	leaf := filepath.Join(d, "leaf.pem")
	pemChain, _ := os.ReadFile(phalaDir + "derived/pck_chain_from_quote.pem")
	end := bytes.Index(pemChain, []byte("-----END CERTIFICATE-----")) + len("-----END CERTIFICATE-----\n")
	os.WriteFile(leaf, pemChain[:end], 0o644)
	if code, _, errs := magectl(t, nil, append([]string{"quote", "verify", "--collateral", bundle, "--pck-chain", leaf, q}, at...)...); code != 2 || !strings.Contains(errs, "add the PCK CA") {
		t.Errorf("a PCK chain without its CA: exit %d %s", code, errs)
	}
}

// A TDX quote is decoded by quote show and refused, with a reason, where
// only SGX quotes can be verified.
func TestCLITDQuote(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/tdx/tdx_prod_quote_SPR_E4.dat")
	if err != nil {
		t.Fatal(err)
	}
	// The file pads the quote; quote show, strict, wants the quote alone:
	// the header and TD body, then the signature data by its length.
	if n := dcap.HeaderSize + dcap.TDReportBodySize; len(raw) > n+4 {
		raw = raw[:min(len(raw), n+4+int(binary.LittleEndian.Uint32(raw[n:])))]
	}
	td := filepath.Join(t.TempDir(), "td.quote")
	if err := os.WriteFile(td, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseTDQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	mrtd := hex.EncodeToString(q.TD.MRTD[:])
	out := mustRun(t, "quote", "show", td, "--json")
	if !strings.Contains(out, `"mrtd": "`+mrtd+`"`) || !strings.Contains(out, `"tee_type": 129`) || strings.Contains(out, `"enclave"`) {
		t.Errorf("quote show --json:\n%s", out)
	}
	out = mustRun(t, "quote", "show", td)
	if !strings.Contains(out, "TD       MRTD      "+mrtd) || !strings.Contains(out, "QE       MRENCLAVE") || strings.Contains(out, "enclave  MRENCLAVE") {
		t.Errorf("quote show:\n%s", out)
	}
	code, _, errs := magectl(t, nil, "quote", "verify", td, "--no-collateral", "--root", testPKIDir+"trustedRootCaCert.pem")
	if code != 3 || !strings.Contains(errs, "a TDX quote: it verifies with TDX collateral only") {
		t.Errorf("quote verify: exit %d: %s", code, errs)
	}
	// collateral fetch asks the TDX API for a TD quote's TCB Info, never
	// the SGX one; a PCCS without it fails, and writes nothing.
	srv := dcaptest.NewServer(&dcap.Collateral{}, "00806F050000")
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "c.json")
	code, _, errs = magectl(t, nil, "collateral", "fetch", td, "--pccs", srv.BaseURL(), "--insecure-http", "--out", bundle)
	if code == 0 || srv.Requests()["/tdx/certification/v4/tcb"] == 0 || srv.Requests()["/tcb"] != 0 {
		t.Errorf("collateral fetch: exit %d (requests %v): %s", code, srv.Requests(), errs)
	}
	if _, err := os.Stat(bundle); err == nil {
		t.Error("collateral fetch wrote a bundle for a TDX quote")
	}
}

// TestCLITDXCollateralFetch: quote verify --pccs verifies dcap-qvl's TD
// quote UpToDate with the TDX collateral a PCCS serves, through the
// cache, and never asks for the SGX TCB Info or QE identity.
func TestCLITDXCollateralFetch(t *testing.T) {
	dir := "../../testdata/tdx/dcap-qvl/"
	raw, err := os.ReadFile(dir + "tdx_quote_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.ParseCollateralBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	srv := dcaptest.NewServer(col, "B0C06F000000")
	srv.SetTDX(col)
	defer srv.Close()
	code, out, errs := magectl(t, nil, "quote", "verify", "--pccs", srv.BaseURL(), "--insecure-http", "--cache", t.TempDir(), "--time", "2025-07-01T00:00:00Z", dir+"tdx_quote")
	if code != 0 || !strings.Contains(out, "pass tcb_status             UpToDate") || !strings.Contains(out, "TD MRTD 91eb2b44") {
		t.Errorf("quote verify --pccs: exit %d\n%s\n%s", code, out, errs)
	}
	if r := srv.Requests(); r["/tcb"] != 0 || r["/qe/identity"] != 0 || r["/tdx/certification/v4/tcb"] != 1 || r["/tdx/certification/v4/qe/identity"] != 1 {
		t.Errorf("requests: %v", r)
	}
	// collateral fetch through a cache keeps only collateral valid at
	// --time (default now: this collateral expired in 2025), and the
	// bundle it writes verifies the quote offline.
	bundle := filepath.Join(t.TempDir(), "b.json")
	if code, _, errs := magectl(t, nil, "collateral", "fetch", "--pccs", srv.BaseURL(), "--insecure-http", "--cache", t.TempDir(), "--out", bundle, dir+"tdx_quote"); code == 0 {
		t.Errorf("expired collateral bundled: %s", errs)
	}
	mustRun(t, "collateral", "fetch", "--pccs", srv.BaseURL(), "--insecure-http", "--cache", t.TempDir(), "--time", "2025-07-01T00:00:00Z", "--out", bundle, dir+"tdx_quote")
	if out := mustRun(t, "quote", "verify", "--collateral", bundle, "--time", "2025-07-01T00:00:00Z", dir+"tdx_quote"); !strings.Contains(out, "UpToDate") {
		t.Errorf("quote verify with the fetched bundle:\n%s", out)
	}
	if code, _, _ := magectl(t, nil, "collateral", "fetch", "--pcs", "--time", "yesterday", "--out", bundle, dir+"tdx_quote"); code != 2 {
		t.Errorf("a bad --time: exit %d", code)
	}
}
