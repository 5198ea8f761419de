package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/sim"
)

// mixedGroup signs two SDK members and two Gramine members into one group
// (an updatable Merkle group if updatable) and loads them all on one
// simulated platform.
func mixedGroup(t testing.TB, f *fixture, device, updatable bool) ([]*Member, *gramine.Libpal) {
	palRaw, err := os.ReadFile("../testdata/gramine/fakepal.so")
	if err != nil {
		t.Fatal(err)
	}
	pal, err := gramine.ParseLibpal(palRaw)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile("../testdata/gramine/key.pem")
	gkey, _ := sgx.LoadSigningKey(kb)
	d6, _ := os.ReadFile("../testdata/gramine/single/d6_defaults/d6_defaults.manifest.sgx")
	variant := strings.Replace(string(d6), `ONLY = "defaults"`, `ONLY = "variant"`, 1)
	var sdk []mage.Member
	for i, c := range []struct{ enc, cfg, key string }{{"g1_m0", "cG1_group_a", "g1_k0"}, {"g1_m1", "cG1_group_b", "g1_k1"}} {
		key, _ := sgx.LoadSigningKey(read(t, "keys/"+c.key+".pem"))
		cfg, _ := sgxsdk.ParseConfig(read(t, "configs/"+c.cfg+".config.xml"))
		sdk = append(sdk, mage.Member{Name: []string{"a", "b"}[i], ELF: read(t, "enclaves/"+c.enc+".so"), Config: cfg, Key: key})
	}
	opts := mage.SignOptions{Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
	if updatable {
		opts.Merkle, opts.UpdateKey = true, ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	}
	g, err := mage.SignAnyGroup(context.Background(), []mage.AnyMember{
		{SDK: &sdk[0]},
		{Gramine: &mage.GramineMember{Name: "go-api", Manifest: d6, Key: gkey}},
		{SDK: &sdk[1]},
		{Gramine: &mage.GramineMember{Name: "go-worker", Manifest: []byte(variant), Key: gkey}},
	}, pal, opts)
	if err != nil {
		t.Fatal(err)
	}
	var ms []*Member
	for i, sm := range g.Members {
		var backend Backend
		if sm.Kind == mage.KindSDK {
			e, err := f.p.Load(context.Background(), sm.File, nil)
			if err != nil {
				t.Fatal(err)
			}
			backend = NewSimBackend(e)
		} else {
			e, err := f.p.LoadGramine(context.Background(), sm.File, palRaw, sm.Sig, nil)
			if err != nil {
				t.Fatal(err)
			}
			backend = NewSimBackend(e)
			if device {
				// The program's view: /dev/attestation and MAGE_TABLE, with
				// EGETKEY from the simulated CPU instead of ENCLU.
				g := e.Gramine()
				backend, err = NewGramineAttestation(GramineConfig{FS: sim.NewAttestationDevice(e), Table: g.Env["MAGE_TABLE"],
					MaxThreads: g.MaxThreads, EDMM: g.EDMM, Libpal: pal, EGetKey: e.GetKey})
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		cfg := Config{Backend: backend, InsecureSimulationRoot: f.p.RootCertificate(), Libpal: pal, HandshakeTimeout: 5 * time.Second}
		if updatable {
			cfg.Lineage = g.LineageProofs[i]
		}
		m, err := NewMember(cfg)
		if err != nil {
			t.Fatalf("%s: %v", sm.Name, err)
		}
		ms = append(ms, m)
	}
	return ms, pal
}

// TestMixedGroupAttestation: SDK and Gramine members of one group attest
// each other both ways, with remote and local evidence; each derives the
// other from its own table, or in an updatable Merkle group from the
// other's lineage proof.
func TestMixedGroupAttestation(t *testing.T) {
	for _, device := range []bool{false, true} {
		for _, updatable := range []bool{false, true} {
			testMixed(t, device, updatable)
		}
	}
}

func testMixed(t *testing.T, device, updatable bool) {
	f := newFixture(t)
	ms, _ := mixedGroup(t, f, device, updatable)
	for i, a := range ms {
		if a.Index() != i || (!updatable && len(a.Group()) != 4) {
			t.Fatalf("member %d: index %d, group of %d", i, a.Index(), len(a.Group()))
		}
		for j, b := range ms {
			if i == j {
				continue
			}
			for _, kind := range []Kind{Remote, Local} {
				a.cfg.Evidence = kind
				cc, sc, cerr, serr := pair(t, a, b)
				if cerr != nil || serr != nil {
					t.Fatalf("device %v, %s, %d -> %d: %v / %v", device, kind, i, j, cerr, serr)
				}
				if cc.Peer().Index != j || sc.Peer().Index != i || sc.Peer().Evidence != kind {
					t.Errorf("%d -> %d: peers %d, %d", i, j, cc.Peer().Index, sc.Peer().Index)
				}
			}
			a.cfg.Evidence = 0
		}
	}
}

// TestGramineAttestationDevice: the backend refuses a table that does not
// derive the enclave, and its reports verify only for their target.
func TestGramineAttestationDevice(t *testing.T) {
	f := newFixture(t)
	_, pal := mixedGroup(t, f, true, false)
	e, err := f.p.Load(context.Background(), read(t, "signed/g1_v0.signed.so"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// An SDK enclave's device with some table: the table does not derive it.
	_, err = NewGramineAttestation(GramineConfig{FS: sim.NewAttestationDevice(e), Table: strings.Repeat("00", 48), MaxThreads: 4, Libpal: pal, EGetKey: e.GetKey})
	if !errors.Is(err, ErrGramineTable) {
		t.Errorf("foreign table: %v", err)
	}
	if _, err := NewGramineAttestation(GramineConfig{FS: sim.NewAttestationDevice(e), Table: "zz", Libpal: pal}); !errors.Is(err, ErrGramineTable) {
		t.Errorf("non-hex table: %v", err)
	}
}
