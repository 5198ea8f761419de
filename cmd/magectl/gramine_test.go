package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magesgx/mage/mage"
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

// TestCLIGramineGroups: a group of three Gramine members and a mixed group
// of two SDK members and one Gramine member sign, derive and verify; each
// member's derived value equals gramine measure of its final manifest
// (issue 10 done-when).
func TestCLIGramineGroups(t *testing.T) {
	g := func(p string) string { return filepath.Join(gvec, p) }
	d := t.TempDir()
	variant := strings.Replace(readString(t, g("single/d6_defaults/d6_defaults.manifest.sgx")), `ONLY = "defaults"`, `ONLY = "variant"`, 1)
	writeFile(t, filepath.Join(d, "variant.manifest.sgx"), variant)
	gram := func(name, manifest string) string {
		return fmt.Sprintf(`{"name": %q, "manifest": %q, "key": %q, "output": "out/%s.manifest.sgx"}`, name, manifest, g("key.pem"), name)
	}
	sdk := func(name, enclave, config, key string) string {
		return fmt.Sprintf(`{"name": %q, "enclave": %q, "config": %q, "key": %q, "output": "out/%s.so"}`, name, v(enclave), v(config), v(key), name)
	}
	for _, c := range []struct {
		name    string
		members []string
		files   []string
		format  string
	}{
		{"gramine", []string{
			gram("d2", g("single/d2_t4_256M_nodebug_isv/d2_t4_256M_nodebug_isv.manifest.sgx")),
			gram("d6", g("single/d6_defaults/d6_defaults.manifest.sgx")),
			gram("variant", filepath.Join(d, "variant.manifest.sgx")),
		}, []string{"d2.manifest.sgx", "d6.manifest.sgx", "variant.manifest.sgx"}, "gramine"},
		{"mixed", []string{
			sdk("a", "enclaves/g1_m0.so", "configs/cG1_group_a.config.xml", "keys/g1_k0.pem"),
			gram("d2", g("single/d2_t4_256M_nodebug_isv/d2_t4_256M_nodebug_isv.manifest.sgx")),
			sdk("b", "enclaves/g1_m1.so", "configs/cG1_group_b.config.xml", "keys/g1_k1.pem"),
		}, []string{"a.so", "d2.manifest.sgx", "b.so"}, "versioned"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(d, c.name)
			os.MkdirAll(dir, 0o755)
			gf := filepath.Join(dir, "g.group.json")
			writeFile(t, gf, fmt.Sprintf(`{"name": %q, "date": "20261125", "libpal": %q, "members": [%s]}`, c.name, g("fakepal.so"), strings.Join(c.members, ",")))
			mustRun(t, "group", "sign", "-q", gf)
			man := mustReadString(t, filepath.Join(dir, "g.manifest.json"))
			if !strings.Contains(man, `"format": "`+c.format+`"`) {
				t.Errorf("group.json format:\n%s", man)
			}
			var paths []string
			for _, f := range c.files {
				paths = append(paths, filepath.Join(dir, "out", f))
			}
			out := mustRun(t, append([]string{"group", "verify", "--libpal", g("fakepal.so"), "--manifest", filepath.Join(dir, "g.manifest.json")}, paths...)...)
			if strings.Contains(out, "MISMATCH") || strings.Contains(out, "problem") {
				t.Errorf("group verify:\n%s", out)
			}
			for i, p := range paths {
				var dr deriveResult
				if err := json.Unmarshal([]byte(mustRun(t, "derive", "--json", "--libpal", g("fakepal.so"), p)), &dr); err != nil {
					t.Fatal(err)
				}
				if dr.Self != i || len(dr.Members) != 3 {
					t.Errorf("derive %s: self %d of %d", p, dr.Self, len(dr.Members))
				}
				if strings.HasSuffix(p, ".manifest.sgx") {
					mr := strings.TrimSpace(mustRun(t, "gramine", "measure", p, "--libpal", g("fakepal.so")))
					if mr != dr.Members[i].String() {
						t.Errorf("%s: gramine measure %s, derived %s", p, mr, dr.Members[i])
					}
				}
			}
			// Without the libpal, a Gramine member cannot be checked.
			if code, _, errs := magectl(t, nil, "derive", paths[1]); code != 2 || !strings.Contains(errs, "--libpal") {
				t.Errorf("derive without --libpal: exit %d %s", code, errs)
			}
		})
	}
}

func readString(t *testing.T, p string) string { return mustReadString(t, p) }

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCLISimLoadGramine: the simulator loads a Gramine member of a group
// (EINIT's checks against its .sig) and finds it in its own table.
func TestCLISimLoadGramine(t *testing.T) {
	g := func(p string) string { return filepath.Join(gvec, p) }
	d := t.TempDir()
	gf := filepath.Join(d, "g.json")
	writeFile(t, gf, fmt.Sprintf(`{"name": "x", "date": "20261125", "libpal": %q, "members": [{"name": "d2", "manifest": %q, "key": %q, "output": "d2.manifest.sgx"}, {"name": "a", "enclave": %q, "config": %q, "key": %q, "output": "a.so"}]}`,
		g("fakepal.so"), g("single/d2_t4_256M_nodebug_isv/d2_t4_256M_nodebug_isv.manifest.sgx"), g("key.pem"), v("enclaves/g1_m0.so"), v("configs/cG1_group_a.config.xml"), v("keys/g1_k0.pem")))
	mustRun(t, "group", "sign", "-q", gf)
	out := mustRun(t, "sim", "load", "-platform", filepath.Join(d, "p"), "--libpal", g("fakepal.so"), filepath.Join(d, "d2.manifest.sgx"))
	if !strings.Contains(out, "MAGE member 0 of 2") {
		t.Errorf("sim load of a Gramine member:\n%s", out)
	}
	out = mustRun(t, "sim", "load", "-platform", filepath.Join(d, "p"), "--libpal", g("fakepal.so"), filepath.Join(d, "a.so"))
	if !strings.Contains(out, "MAGE member 1 of 2") {
		t.Errorf("sim load of the SDK member:\n%s", out)
	}
	// A .sig of another enclave is refused by EINIT (exit 1).
	if code, _, _ := magectl(t, nil, "sim", "load", "-platform", filepath.Join(d, "p"), "--libpal", g("fakepal.so"), "--sig", g("group/alice.sig"), filepath.Join(d, "d2.manifest.sgx")); code != 1 {
		t.Errorf("a foreign .sig: exit %d, want 1", code)
	}
}

// TestCLIMixedRollingUpdate: a mixed (SDK and Gramine) updatable Merkle
// group, and a successor that keeps the SDK member and a Gramine member
// and replaces the other Gramine member; group verify checks every member
// of both epochs, and derive checks the new Gramine member's value against
// gramine measure of its final manifest. (Issue 14.)
func TestCLIMixedRollingUpdate(t *testing.T) {
	g := func(p string) string { return filepath.Join(gvec, p) }
	d := t.TempDir()
	base := readString(t, g("single/d6_defaults/d6_defaults.manifest.sgx"))
	gram := func(name string) string {
		p := filepath.Join(d, name+".manifest.sgx")
		writeFile(t, p, strings.Replace(base, `ONLY = "defaults"`, `ONLY = "`+name+`"`, 1))
		return fmt.Sprintf(`{"name": %q, "manifest": %q, "key": %q, "output": "out/%s.manifest.sgx"}`, name, p, g("key.pem"), name)
	}
	sdk := fmt.Sprintf(`{"name": "a", "enclave": %q, "config": %q, "key": %q, "output": "out/a.so"}`, v("enclaves/g1_m0.so"), v("configs/cG1_group_a.config.xml"), v("keys/g1_k0.pem"))
	upd := filepath.Join(d, "upd.pem")
	mustRun(t, "keygen", "--update-key", "-out", upd)
	pal := g("fakepal.so")
	for _, sub := range []string{"v0", "v1"} {
		os.MkdirAll(filepath.Join(d, sub), 0o755)
	}
	g0 := filepath.Join(d, "v0", "g.json")
	writeFile(t, g0, fmt.Sprintf(`{"name": "mixed", "date": "20261130", "libpal": %q, "members": [%s, %s, %s]}`, pal, sdk, gram("x"), gram("y")))
	mustRun(t, "group", "sign", "-q", "--table", "merkle", "--update-key", upd, g0)
	g1 := filepath.Join(d, "v1", "g.json")
	writeFile(t, g1, fmt.Sprintf(`{"name": "mixed", "date": "20261130", "libpal": %q, "members": [{"name": "a", "keep": true}, {"name": "x", "keep": true}, %s]}`, pal, gram("y2")))
	mustRun(t, "group", "sign", "-q", "--predecessor", filepath.Join(d, "v0", "g.manifest.json"), "--update-key", upd, g1)
	man, err := mage.LoadManifest(filepath.Join(d, "v1", "g.manifest.json"))
	if err != nil || man.Format != "merkle" || man.Epoch != 1 || len(man.Members) != 3 || man.Members[2].Name != "y2" {
		t.Fatalf("epoch 1 manifest: %+v %v", man, err)
	}
	out := mustRun(t, "group", "verify", "--libpal", pal, "--manifest", filepath.Join(d, "v1", "g.manifest.json"))
	if strings.Contains(out, "problem") || strings.Contains(out, "MISMATCH") {
		t.Fatalf("group verify:\n%s", out)
	}
	// The kept SDK member derives the new Gramine member: gramine
	// measure of its final manifest gives the same value.
	y2 := man.Members[2].File
	var dr deriveResult
	if err := json.Unmarshal([]byte(mustRun(t, "derive", "--json", "--libpal", pal, "--self-proof", man.Members[0].Proof, "--proof", man.Members[2].Proof, man.Members[0].File)), &dr); err != nil {
		t.Fatal(err)
	}
	mr := strings.TrimSpace(mustRun(t, "gramine", "measure", y2, "--libpal", pal))
	if len(dr.Proven) != 1 || dr.Proven[0].MRENCLAVE.String() != mr {
		t.Errorf("derive %+v, gramine measure %s", dr, mr)
	}
}
