package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

var gvec, _ = filepath.Abs("../../testdata/gramine")

// TestCLIGramine: measure, sign and show reproduce Gramine v1.9's signer on
// its vectors; bad input is refused with exit 3.
func TestCLIGramine(t *testing.T) {
	g := func(p string) string { return filepath.Join(gvec, p) }
	pal := g("fakepal.so")
	out := mustRun(t, "gramine", "measure", "--json", g("single/d3_edmm_t4_256M/d3_edmm_t4_256M.manifest.sgx"), "--libpal", pal)
	var m struct {
		MRENCLAVE string `json:"mrenclave"`
	}
	json.Unmarshal([]byte(out), &m)
	if m.MRENCLAVE != "143f7d03d504d8bad74ede4f227f21da600c79857706c251971df7cb5c0f17d3" {
		t.Errorf("gramine measure --json: %s", out)
	}
	sig := filepath.Join(t.TempDir(), "bob.sig")
	mustRun(t, "gramine", "sign", g("group/bob.manifest.sgx"), "--libpal", pal, "--key", g("key.pem"), "--date", "2024-01-01", "--out", sig)
	sameFile(t, sig, g("group/bob.sig"))
	if out := mustRun(t, "gramine", "show", sig); !strings.Contains(out, "dfb8d78ed7c6c05dd7b71db74450786cf01be0e1834753dd689f1a992a09d018") || !strings.Contains(out, "signature:   valid") {
		t.Errorf("gramine show:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"gramine", "measure", g("group/bob.manifest.sgx")}, 2},                           // no --libpal
		{[]string{"gramine", "measure", pal, "--libpal", pal}, 3},                                  // an ELF is no manifest
		{[]string{"gramine", "measure", g("group/bob.manifest.sgx"), "--libpal", g("key.pem")}, 3}, // a key is no libpal
		{[]string{"gramine", "show", g("fakepal.so")}, 3},
	} {
		if code, _, errs := magectl(t, nil, c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args[1:], code, c.code, errs)
		}
	}
}
