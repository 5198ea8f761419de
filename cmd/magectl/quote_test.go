package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
