package mage

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

type signVector struct {
	ID       string `json:"id"`
	Mode     string `json:"mode"`
	Group    string `json:"group"`
	Index    int    `json:"index"`
	Enclave  string `json:"enclave"`
	Key      string `json:"key"`
	Config   string `json:"config"`
	Signed   string `json:"signed"`
	CSS      string `json:"css"`
	Expected struct {
		MRENCLAVE string `json:"mrenclave"`
	} `json:"expected"`
	MageEntry struct {
		Raw48 string `json:"raw48_hex"`
	} `json:"mage_entry"`
}

type vectorManifest struct {
	Vectors  []signVector                        `json:"vectors"`
	Enclaves map[string]struct{ File string }    `json:"enclaves"`
	Keys     map[string]struct{ Private string } `json:"keys"`
	Configs  map[string]struct{ File string }    `json:"configs"`
}

func loadVectorManifest(t testing.TB) *vectorManifest {
	b := readVector(t, "manifest.json")
	var m vectorManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// groupMembers loads the inputs of one reference group, in table order.
func groupMembers(t testing.TB, group string) ([]Member, []signVector) {
	m := loadVectorManifest(t)
	var vs []signVector
	for _, v := range m.Vectors {
		if v.Mode == "signmage" && v.Group == group {
			vs = append(vs, v)
		}
	}
	members := make([]Member, len(vs))
	for _, v := range vs {
		var cfg *sgxsdk.Config
		if v.Config != "" {
			c, err := sgxsdk.ParseConfig(readVector(t, m.Configs[v.Config].File))
			if err != nil {
				t.Fatal(err)
			}
			cfg = c
		}
		key, err := sgx.LoadSigningKey(readVector(t, m.Keys[v.Key].Private))
		if err != nil {
			t.Fatal(err)
		}
		members[v.Index] = Member{Name: v.ID, ELF: readVector(t, m.Enclaves[v.Enclave].File), Config: cfg, Key: key}
	}
	return members, vs
}

// TestSignGroupReference signs the reference groups g1 (3 members) and g2
// (10 members) in one call and compares every output with the prototype's
// genmage+signmage outputs, byte for byte.
func TestSignGroupReference(t *testing.T) {
	for _, group := range []string{"g1", "g2"} {
		t.Run(group, func(t *testing.T) {
			members, vs := groupMembers(t, group)
			g, err := SignGroup(t.Context(), members, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			if want := readVector(t, "mage/"+group+".sgx_mage_table.bin"); !bytes.Equal(g.Section, want) {
				t.Fatal("table differs from the reference")
			}
			for _, v := range vs {
				sm := g.Members[v.Index]
				if sm.MRENCLAVE.String() != v.Expected.MRENCLAVE {
					t.Errorf("%s: MRENCLAVE %s, want %s", v.ID, sm.MRENCLAVE, v.Expected.MRENCLAVE)
				}
				if !bytes.Equal(sm.Sigstruct.Marshal(), readVector(t, v.CSS)) {
					t.Errorf("%s: SIGSTRUCT differs", v.ID)
				}
				if !bytes.Equal(sm.File, readVector(t, v.Signed)) {
					t.Errorf("%s: signed file differs", v.ID)
				}
			}
		})
	}
}

func TestSignGroupGuards(t *testing.T) {
	members, _ := groupMembers(t, "g1")
	// The same member twice.
	dup := []Member{members[0], members[1], members[0]}
	if _, err := SignGroup(t.Context(), dup, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate member: %v", err)
	}
	// A member without a .sgx_mage section.
	plain := Member{Name: "plain", ELF: readVector(t, "enclaves/e1_small.so"), Key: members[0].Key}
	if _, err := SignGroup(t.Context(), []Member{members[0], plain}, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrNoSection) {
		t.Errorf("member without section: %v", err)
	}
	if _, err := SignGroup(t.Context(), nil, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrEmptyGroup) {
		t.Errorf("empty group: %v", err)
	}
	if _, err := SignGroup(t.Context(), members, SignOptions{}); !errors.Is(err, ErrMissingDate) {
		t.Errorf("no date: %v", err)
	}
}

func TestParseGroupFile(t *testing.T) {
	dir := t.TempDir()
	ok := `{"name":"g","members":[{"name":"a","enclave":"a.so","key":"k.pem","output":"out/a.so"},{"enclave":"/abs/b.so","key":"k.pem","output":"b.signed.so"}]}`
	g, err := ParseGroupFile([]byte(ok), dir)
	if err != nil {
		t.Fatal(err)
	}
	if g.Members[0].Enclave != filepath.Join(dir, "a.so") || g.Members[1].Enclave != "/abs/b.so" || g.Members[1].Name != "member1" {
		t.Fatalf("paths not resolved: %+v", g.Members)
	}
	bad := map[string]string{
		"garbage":        `{"members":`,
		"unknown field":  `{"members":[{"enclave":"a","key":"k","output":"o"}],"extra":1}`,
		"no members":     `{"name":"g","members":[]}`,
		"missing key":    `{"members":[{"enclave":"a","output":"o"}]}`,
		"same output":    `{"members":[{"enclave":"a","key":"k","output":"o"},{"enclave":"b","key":"k","output":"o"}]}`,
		"overwrite self": `{"members":[{"enclave":"a","key":"k","output":"a"}]}`,
		"duplicate name": `{"members":[{"name":"x","enclave":"a","key":"k","output":"o1"},{"name":"x","enclave":"b","key":"k","output":"o2"}]}`,
		"trailing":       `{"members":[{"enclave":"a","key":"k","output":"o"}]} {}`,
	}
	for name, s := range bad {
		if _, err := ParseGroupFile([]byte(s), dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseGroupFile(f *testing.F) {
	f.Add([]byte(`{"name":"g","members":[{"name":"a","enclave":"a.so","key":"k.pem","output":"out/a.so"}]}`))
	f.Add([]byte(`{"name":"g","members":[{"name":"v","snp":{"firmware":"f","vcpus":2,"vcpu_type":"EPYC-Milan","kernel":"k","cmdline":"quiet"},"output":"v.cmdline"},` +
		`{"name":"t","tdx":{"mrtd":"` + strings.Repeat("00", 48) + `","event_log":"ccel"},"output":"t.table"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGroupFile(b, "/base")
		if err != nil {
			return
		}
		if len(g.Members) == 0 {
			t.Fatal("group without members accepted")
		}
	})
}

// TestManifestRoundTrip: a signed group's manifest parses back to the same
// members, and broken manifests are refused; SignOptions.Date is a time,
// required. (Issue 9, item 19.)
func TestManifestRoundTrip(t *testing.T) {
	members, _ := groupMembers(t, "g1")
	g, err := SignGroup(t.Context(), members, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	m := g.Manifest("g1", nil)
	raw, _ := json.Marshal(m)
	back, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n%+v\n%+v", back, m)
	}
	for name, mod := range map[string]func(*Manifest){
		"no members":     func(m *Manifest) { m.Members = nil },
		"index":          func(m *Manifest) { m.Members[1].Index = 5 },
		"duplicate":      func(m *Manifest) { m.Members[1].Identity.MRENCLAVE = m.Members[0].Identity.MRENCLAVE },
		"table hash":     func(m *Manifest) { m.TableSHA256 = "xyz" },
		"section size":   func(m *Manifest) { m.SectionSize = 100 },
		"no measurement": func(m *Manifest) { m.Members[0].Identity.MRENCLAVE = [32]byte{} },
	} {
		c, _ := ParseManifest(raw)
		mod(c)
		b, _ := json.Marshal(c)
		if _, err := ParseManifest(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseManifest(append(raw, []byte(`{}`)...)); err == nil {
		t.Error("trailing data accepted")
	}
	if _, err := SignGroup(t.Context(), members, SignOptions{}); !errors.Is(err, ErrMissingDate) {
		t.Errorf("zero date: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	members, _ := groupMembers(f, "g1")
	g, err := SignGroup(f.Context(), members, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := json.Marshal(g.Manifest("g1", []string{"a", "b", "c"}))
	f.Add(raw)
	f.Add([]byte(`{"section_size":4096,"table_sha256":"","members":[]}`))
	vm := testVMs()[0].member(f)
	mixed, err := SignAnyGroup(f.Context(), []AnyMember{{SDK: &members[0]}, vm, {TDX: &TDXMember{Name: "t", Entry: TDXEntry{MRTD: [48]byte{1}}}}}, nil, SignOptions{Date: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		f.Fatal(err)
	}
	raw, _ = json.Marshal(mixed.Manifest("vms", []string{"a", "v.cmdline", "t.table"}))
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if len(m.Members) == 0 || (m.Format == "" && len(m.Members) > Capacity(m.SectionSize)) {
			t.Fatalf("manifest of %d members in %d bytes accepted", len(m.Members), m.SectionSize)
		}
		again, _ := json.Marshal(m)
		if _, err := ParseManifest(again); err != nil {
			t.Fatalf("an accepted manifest does not parse back: %v", err)
		}
	})
}
