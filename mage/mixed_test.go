package mage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
	"github.com/magesgx/mage/sgxsdk"
)

func gramineInput(t testing.TB, id string) []byte {
	b, err := os.ReadFile("../testdata/gramine/single/" + id + "/" + id + ".manifest.sgx")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// anyGroup signs members and checks every claim of the result: each
// member's MRENCLAVE is its file's real measurement, every member's table
// derives every member, and the signatures verify.
func anyGroup(t *testing.T, members []AnyMember, pal *gramine.Libpal) *SignedAnyGroup {
	t.Helper()
	g, err := SignAnyGroup(context.Background(), members, pal, SignOptions{Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var want []sgx.Measurement
	for _, sm := range g.Members {
		want = append(want, sm.MRENCLAVE)
	}
	for _, sm := range g.Members {
		var d *TableDeriver
		switch sm.Kind {
		case KindSDK:
			s, err := sgxsdk.ParseSigned(sm.File)
			if err != nil {
				t.Fatal(err)
			}
			if mr, err := s.Measure(t.Context()); err != nil || mr != sm.MRENCLAVE || s.Sigstruct().Verify() != nil {
				t.Fatalf("%s: replayed %s %v", sm.Name, mr, err)
			}
			if d, err = NewSectionDeriver(s.ELF.MageSection(), pal); err != nil {
				t.Fatal(err)
			}
		case KindGramine:
			m, err := gramine.ParseManifest(sm.File)
			if err != nil {
				t.Fatal(err)
			}
			e, err := gramine.NewEnclave(m, pal)
			if err != nil {
				t.Fatal(err)
			}
			css, err := sgx.ParseSigstruct(sm.Sig)
			if err != nil || e.Measure() != sm.MRENCLAVE || css.Verify() != nil || sgx.Measurement(css.EnclaveHash) != sm.MRENCLAVE {
				t.Fatalf("%s: measures %s, want %s (%v)", sm.Name, e.Measure(), sm.MRENCLAVE, err)
			}
			// The table reaches the program as MAGE_TABLE.
			var payload []byte
			d, payload = manifestDeriver(t, m, pal)
			if !strings.HasSuffix(string(sm.File), string(GramineTableText(payload))) {
				t.Errorf("%s: the table is not the manifest's last line", sm.Name)
			}
		}
		got, err := d.DeriveAll()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] || d.Kind(i) != g.Members[i].Kind {
				t.Errorf("%s's table derives member %d as %s %s, want %s %s", sm.Name, i, d.Kind(i), got[i], g.Members[i].Kind, want[i])
			}
		}
	}
	return g
}

func hexDecode(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | byte(c-'0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | byte(c-'a'+10)
			default:
				return nil, errors.New("not hex")
			}
		}
		b[i] = v
	}
	return b, nil
}

// TestSignAnyGroup: a group of three Gramine members, and a mixed group
// of two SDK members and one Gramine member, sign; every member's table
// derives every member's real MRENCLAVE (issue 10 done-when).
func TestSignAnyGroup(t *testing.T) {
	_, _, c := gramineVectors(t)
	kb, _ := os.ReadFile("../testdata/gramine/key.pem")
	key, err := sgx.LoadSigningKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	variant := strings.Replace(string(gramineInput(t, "d6_defaults")), `ONLY = "defaults"`, `ONLY = "variant"`, 1)
	gram := func(name string, b []byte) AnyMember {
		return AnyMember{Gramine: &GramineMember{Name: name, Manifest: b, Key: key}}
	}
	g := anyGroup(t, []AnyMember{
		gram("d2", gramineInput(t, "d2_t4_256M_nodebug_isv")),
		gram("d6", gramineInput(t, "d6_defaults")),
		gram("variant", []byte(variant)),
	}, c.Libpal)
	if len(g.Payload) != 3*EntrySize || g.Section != nil {
		t.Errorf("Gramine-only group: payload of %d bytes, section %v", len(g.Payload), g.Section != nil)
	}

	sdk, _ := groupMembers(t, "g1")
	m := anyGroup(t, []AnyMember{{SDK: &sdk[0]}, gram("d2", gramineInput(t, "d2_t4_256M_nodebug_isv")), {SDK: &sdk[1]}}, c.Libpal)
	if !IsVersioned(m.Payload) || len(m.Section) != 4096 {
		t.Errorf("mixed group: payload versioned %v, section %d bytes", IsVersioned(m.Payload), len(m.Section))
	}
	// A classic reader refuses the versioned section rather than misread it.
	if _, err := ParseTable(m.Section); err == nil {
		t.Error("a classic parser accepted a versioned table")
	}

	// Refusals.
	for name, c2 := range map[string]struct {
		members []AnyMember
		want    error
	}{
		"thread counts differ": {[]AnyMember{gram("a", gramineInput(t, "d2_t4_256M_nodebug_isv")), gram("b", gramineInput(t, "d4_env_trusted_64M"))}, ErrGramineConstants},
		"table already set":    {[]AnyMember{gram("a", []byte(strings.Replace(variant, "[loader.env]\n", "[loader.env]\nMAGE_TABLE = \"00\"\n", 1)))}, ErrGramineManifest},
		"env from the host":    {[]AnyMember{gram("a", []byte("loader.env_src_file = \"file:env\"\n"+variant))}, ErrGramineManifest},
		"trusted manifest":     {[]AnyMember{gram("a", []byte(strings.Replace(variant, "trusted_files = []", `trusted_files = [{uri = "file:peer.manifest.sgx"}]`, 1)))}, ErrGramineManifest},
	} {
		if _, err := SignAnyGroup(t.Context(), c2.members, c.Libpal, SignOptions{Date: time.Now()}); !errors.Is(err, c2.want) {
			t.Errorf("%s: %v, want %v", name, err, c2.want)
		}
	}
}

// FuzzTables feeds hostile bytes to every table reader: as an SDK section
// (classic or versioned) and as a Gramine payload (bare or versioned).
func FuzzTables(f *testing.F) {
	_, payload, c := gramineVectors(f)
	f.Add(payload)
	t := &VersionedTable{Kinds: []Kind{KindSDK, KindGramine}, Entries: []Entry{{State: measureState(64), Offset: 0x3000}, {State: measureState(5248), Offset: 0xffff000}},
		SDKSectionSize: 4096, LibpalSHA256: c.Libpal.SHA256, MaxThreads: 4, Layout: GramineLayoutV15}
	f.Add(t.Marshal())
	// An updatable Merkle table of epoch 3.
	f.Add((&VersionedTable{Merkle: true, Count: 5, Root: [32]byte{1}, Updatable: true, UpdateKey: [32]byte{2}, Epoch: 3, Predecessor: [32]byte{3},
		SDKSectionSize: 4096}).Marshal())
	// A table with an SNP member beside an SDK member.
	vm := testVMs()[0].member(f).SNP.Entry
	f.Add((&VersionedTable{Kinds: []Kind{KindSDK, KindSNP}, Entries: []Entry{{State: measureState(64), Offset: 0x3000}, {}}, SNP: []*SNPEntry{nil, &vm},
		SDKSectionSize: 4096}).Marshal())
	// And a TDX member.
	f.Add((&VersionedTable{Kinds: []Kind{KindTDX, KindSNP}, Entries: []Entry{{}, {}}, SNP: []*SNPEntry{nil, &vm},
		TDX: []*TDXEntry{{MRTD: [48]byte{1}}, nil}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := NewPayloadDeriver(b, c); err == nil {
			for i := range min(d.Len(), 3) {
				d.Derive(i)
				d.DeriveLaunch(i)
				d.DeriveTD(i)
			}
		}
		sec := make([]byte, 4096)
		copy(sec, b)
		if d, err := NewSectionDeriver(sec, c.Libpal); err == nil {
			for i := range min(d.Len(), 3) {
				d.Derive(i)
				d.DeriveLaunch(i)
			}
		}
		if vt, err := ParseVersionedTable(b); err == nil {
			if len(vt.Kinds) != len(vt.Entries) || (vt.SNP != nil && len(vt.SNP) != len(vt.Kinds)) {
				t.Fatal("kinds and entries differ in number")
			}
			if vt.SNP != nil && !bytes.Equal(vt.Marshal(), b[:len(vt.Marshal())]) {
				t.Fatal("a table with VM members does not survive its encoding")
			}
			if vt.Updatable {
				if w, err := ParseVersionedTable(vt.Marshal()); err != nil || w.Hash() != vt.Hash() {
					t.Fatalf("an updatable table does not survive its encoding: %v", err)
				}
			}
		}
	})
}

// manifestDeriver returns the deriver of a Gramine member's table (its
// MAGE_TABLE), and the table.
func manifestDeriver(t *testing.T, m *gramine.Manifest, pal *gramine.Libpal) (*TableDeriver, []byte) {
	t.Helper()
	env := m.Tree["loader"].(map[string]any)["env"].(map[string]any)
	payload, err := hexDecode(env["MAGE_TABLE"].(string))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewPayloadDeriver(payload, GramineConstants{Libpal: pal, MaxThreads: m.MaxThreads, EDMM: m.EDMM})
	if err != nil {
		t.Fatal(err)
	}
	return d, payload
}

func measureState(size uint64) (s measure.State) {
	s.Size = size
	s.H = [8]uint32{1, 2, 3, 4, 5, 6, 7, 8}
	return s
}
