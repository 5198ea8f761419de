package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/magesgx/mage/sgx"
)

// TestMain lets the test binary serve as the demo's member processes: the
// demo re-executes os.Executable() with the hidden _demo-member command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "_demo-member" {
		e := &env{ctx: context.Background(), stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
		os.Exit(run(e, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestDemo(t *testing.T) {
	code, out, errs := magectl(t, nil, "demo", "--json", "--platform", t.TempDir())
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errs)
	}
	var res demoResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	// Three SDK members, a Gramine member, an SEV-SNP VM and a TDX TD:
	// 6 x 5 ordered pairs with remote evidence (SNP reports from the VM,
	// TD quotes from the TD), and the 4 x 3 pairs of enclaves again with
	// local evidence.
	if !res.OK || len(res.Members) != 6 || len(res.Handshakes) != 42 || len(res.Impostors) != 5 {
		t.Fatalf("demo result: %s", out)
	}
	vm := res.Members[4]
	if vm.Kind != "snp" || len(vm.Launch) != 96 || vm.MRENCLAVE != (sgx.Measurement{}) {
		t.Errorf("the VM member: %+v", vm)
	}
	if imp := res.Impostors[3]; imp.Name != "mallory" || imp.Launch == "" || imp.Launch == vm.Launch {
		t.Errorf("the VM impostor: %+v", imp)
	}
	td := res.Members[5]
	if td.Kind != "tdx" || td.MRTD[:16] != "4c7206f0f483c524" || len(td.RTMR3) != 96 {
		t.Errorf("the TD member: %+v", td)
	}
	if imp := res.Impostors[4]; imp.Name != "trudy" || imp.RTMR3 == "" || imp.RTMR3 == td.RTMR3 {
		t.Errorf("the TD impostor: %+v", imp)
	}
	for _, h := range res.Handshakes {
		if !h.ClientVerified || !h.ServerVerified {
			t.Errorf("handshake %+v", h)
		}
	}
	for _, i := range res.Impostors {
		if !i.Refused || i.Reason == "" {
			t.Errorf("impostor %+v", i)
		}
	}
}

// TestDemoUpdate: the rolling-update demo runs: the epoch-0 group attests,
// the kept member and the new version attest each other both ways with
// both kinds of evidence, and the dropped and replaced members are refused.
func TestDemoUpdate(t *testing.T) {
	code, out, errs := magectl(t, nil, "demo", "--update", "--json", "--platform", t.TempDir())
	if code != 0 {
		t.Fatalf("demo --update: exit %d\n%s\n%s", code, out, errs)
	}
	var res demoResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.OK || len(res.Members) != 4 || len(res.Handshakes) != 10 || len(res.Impostors) != 4 {
		t.Fatalf("demo result: %s", out)
	}
	for _, i := range res.Impostors {
		if !i.Refused || i.Reason == "" {
			t.Errorf("not refused: %+v", i)
		}
	}
}
