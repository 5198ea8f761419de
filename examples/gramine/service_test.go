package gramine

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/attest"
	mgramine "github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
)

const vectors = "../../testdata/gramine/"

// expand stands in for gramine-manifest and gramine-sgx-sign: the
// template with its placeholders filled in.
func expand(t *testing.T, name string) []byte {
	b, err := os.ReadFile("ledger.manifest.template")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{ gramine.libos }}", "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so",
		"{{ gramine.runtimedir() }}", "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc", "{{ name }}", name).Replace(string(b))
	return []byte(s)
}

// TestLedgerInGroup runs everything short of gramine-sgx: the template,
// expanded, signed into a group with a second member; each member loaded
// on the simulated platform with its manifest and .sig, reading its table
// from MAGE_TABLE and attesting through a /dev/attestation that behaves as
// Gramine's; the auditor calls the ledger over attested HTTP.
func TestLedgerInGroup(t *testing.T) {
	palRaw, err := os.ReadFile(vectors + "fakepal.so")
	if err != nil {
		t.Fatal(err)
	}
	pal, err := mgramine.ParseLibpal(palRaw)
	if err != nil {
		t.Fatal(err)
	}
	palPath := filepath.Join(t.TempDir(), "libpal.so")
	os.WriteFile(palPath, palRaw, 0o644)
	kb, _ := os.ReadFile(vectors + "key.pem")
	key, err := sgx.LoadSigningKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mage.SignAnyGroup(context.Background(), []mage.AnyMember{
		{Gramine: &mage.GramineMember{Name: "ledger", Manifest: expand(t, "ledger"), Key: key}},
		{Gramine: &mage.GramineMember{Name: "auditor", Manifest: expand(t, "auditor"), Key: key}},
	}, pal, mage.SignOptions{Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var members []*attest.Member
	for _, sm := range g.Members {
		e, err := p.LoadGramine(context.Background(), sm.File, palRaw, sm.Sig, nil)
		if err != nil {
			t.Fatal(err)
		}
		env := e.Gramine().Env
		s := Settings{Table: env["MAGE_TABLE"], LibpalPath: palPath, EDMM: env["MAGE_EDMM"] == "true"}
		if env["MAGE_MAX_THREADS"] != "4" {
			t.Fatalf("MAGE_MAX_THREADS %q", env["MAGE_MAX_THREADS"])
		}
		s.MaxThreads = 4
		m, err := NewMember(s, sim.NewAttestationDevice(e), e.GetKey, attest.Config{InsecureSimulationRoot: p.RootCertificate()})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := Serve(members[0], ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialTLSContext: members[1].DialContext}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/balance")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ledger (member 0) to member 1: balance 42\n" {
		t.Errorf("auditor got %q", body)
	}
}

// TestFromEnvOutsideGramine: run outside Gramine (no MAGE_TABLE), the
// service says it needs Gramine rather than failing on a missing number.
func TestFromEnvOutsideGramine(t *testing.T) {
	t.Setenv("MAGE_TABLE", "")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "Gramine") {
		t.Errorf("FromEnv outside Gramine: %v", err)
	}
}
