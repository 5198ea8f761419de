package mage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magesgx/mage/sgx"
)

const vectors = "../testdata/sgxsdk"

type groupVector struct {
	ID        string   `json:"id"`
	MageFile  string   `json:"mage_file"`
	TableFile string   `json:"table_file"`
	Derived   []string `json:"derived_measurements"`
	Members   []struct {
		Vector    string `json:"vector"`
		Signed    string `json:"signed"`
		Index     int    `json:"index"`
		MRENCLAVE string `json:"mrenclave"`
	} `json:"members"`
}

func loadGroups(t testing.TB) []groupVector {
	b, err := os.ReadFile(filepath.Join(vectors, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Groups []groupVector `json:"mage_groups"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Groups) != 2 {
		t.Fatalf("%d groups in manifest", len(m.Groups))
	}
	return m.Groups
}

func readVector(t testing.TB, p string) []byte {
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReferenceGroups decodes the prototype's tables, re-encodes them byte
// for byte, and derives every member's real MRENCLAVE.
func TestReferenceGroups(t *testing.T) {
	for _, g := range loadGroups(t) {
		t.Run(g.ID, func(t *testing.T) {
			section := readVector(t, g.TableFile)
			tab, err := ParseTable(section)
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.Entries) != len(g.Members) {
				t.Fatalf("%d entries, want %d", len(tab.Entries), len(g.Members))
			}
			again, err := tab.Marshal(len(section))
			if err != nil || !bytes.Equal(again, section) {
				t.Fatalf("Marshal does not round-trip: %v", err)
			}
			entries, err := ParseEntries(readVector(t, g.MageFile))
			if err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				if entries[i] != tab.Entries[i] {
					t.Errorf("genmage entry %d differs from table entry", i)
				}
			}
			all, err := DeriveAll(section)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range g.Members {
				if got := all[i].String(); got != m.MRENCLAVE || got != g.Derived[i] {
					t.Errorf("member %d: derived %s, want %s", i, got, m.MRENCLAVE)
				}
				one, err := Derive(section, i)
				if err != nil || one != all[i] {
					t.Errorf("Derive(%d) = %s, %v", i, one, err)
				}
			}
			seq, err := DeriveAllContext(t.Context(), section, 1)
			if err != nil {
				t.Fatal(err)
			}
			for i := range seq {
				if seq[i] != all[i] {
					t.Fatalf("sequential and parallel derivation differ at %d", i)
				}
			}
		})
	}
}

func TestTrust(t *testing.T) {
	g := loadGroups(t)[1]
	section := readVector(t, g.TableFile)
	trusted, _ := sgx.ParseMeasurement(g.Members[4].MRENCLAVE)
	grp, err := Trust(t.Context(), trusted, section)
	if err != nil {
		t.Fatal(err)
	}
	if grp.Self != 4 || len(grp.Measurements) != 10 {
		t.Fatalf("Self %d, %d members", grp.Self, len(grp.Measurements))
	}
	if grp.Measurements[7].String() != g.Members[7].MRENCLAVE {
		t.Fatal("member 7 not derived")
	}
	// A measurement from another group does not authenticate this table.
	other, _ := sgx.ParseMeasurement(loadGroups(t)[0].Members[0].MRENCLAVE)
	if _, err := Trust(t.Context(), other, section); !errors.Is(err, ErrUntrustedTable) {
		t.Fatalf("Trust with a foreign measurement: %v", err)
	}
	// A table altered in any entry no longer derives the trusted value for
	// the member, even if the alteration is in another member's entry: the
	// whole table is measured.
	bad := bytes.Clone(section)
	bad[8+48*2+20] ^= 1
	if _, err := Trust(t.Context(), trusted, bad); !errors.Is(err, ErrUntrustedTable) {
		t.Fatalf("Trust with a tampered table: %v", err)
	}
}

func TestTableErrors(t *testing.T) {
	section := readVector(t, "mage/g1.sgx_mage_table.bin")
	cases := map[string][]byte{
		"empty":           nil,
		"not page sized":  section[:4000],
		"count too large": append([]byte{0xff, 0xff, 0, 0, 0, 0, 0, 0}, section[8:]...),
		"trailing byte":   func() []byte { b := bytes.Clone(section); b[4095] = 1; return b }(),
		"odd size":        func() []byte { b := bytes.Clone(section); b[8] = 1; return b }(),
		"unaligned offset": func() []byte {
			b := bytes.Clone(section)
			b[16] = 1
			return b
		}(),
	}
	for name, b := range cases {
		if _, err := ParseTable(b); !errors.Is(err, ErrTable) {
			t.Errorf("%s: ParseTable = %v, want ErrTable", name, err)
		}
	}
	if _, err := Derive(section, 3); err == nil {
		t.Error("Derive out of range accepted")
	}
	tab, _ := ParseTable(section)
	full := &Table{}
	for range Capacity(PageSize) + 1 {
		full.Entries = append(full.Entries, tab.Entries[0])
	}
	if _, err := full.Marshal(PageSize); !errors.Is(err, ErrCapacity) {
		t.Errorf("overfull table: %v", err)
	}
	if _, err := full.Marshal(2 * PageSize); err != nil {
		t.Errorf("two-page table: %v", err)
	}
	if Capacity(PageSize) != 85 || Capacity(2*PageSize) != 170 {
		t.Errorf("capacity %d %d", Capacity(PageSize), Capacity(2*PageSize))
	}
}

func FuzzParseTable(f *testing.F) {
	f.Add(readVector(f, "mage/g1.sgx_mage_table.bin"))
	f.Add(readVector(f, "mage/g2.sgx_mage_table.bin"))
	f.Add(make([]byte, PageSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseTable(b)
		if err != nil {
			return
		}
		again, err := tab.Marshal(len(b))
		if err != nil {
			t.Fatalf("parsed table does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("round trip differs")
		}
		if _, err := DeriveAll(b); err != nil {
			t.Fatalf("parsed table does not derive: %v", err)
		}
	})
}

// TestBoundedSection: a section larger than MaxSectionSize is refused by
// every reader before any hashing (derivation is quadratic in the section
// size), and Trust stops when its context is done. (Issue 9, item 9.)
func TestBoundedSection(t *testing.T) {
	big := make([]byte, 4<<20) // 4 MiB: about 87,000 entries x 1024 pages
	binary.LittleEndian.PutUint64(big, uint64(Capacity(len(big))))
	for name, f := range map[string]func() error{
		"ParseTable": func() error { _, err := ParseTable(big); return err },
		"Derive":     func() error { _, err := Derive(big, 0); return err },
		"Finish":     func() error { _, err := Finish(Entry{}, big); return err },
		"DeriveAll":  func() error { _, err := DeriveAll(big); return err },
		"Trust":      func() error { _, err := Trust(t.Context(), sgx.Measurement{}, big); return err },
		"NewDeriver": func() error { _, err := NewDeriver(big); return err },
	} {
		if err := f(); !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), "exceeds") {
			t.Errorf("%s of a 4 MiB section: %v, want ErrTable (exceeds)", name, err)
		}
	}
	if _, err := (&Table{}).Marshal(MaxSectionSize + PageSize); !errors.Is(err, ErrTable) {
		t.Errorf("Marshal past the bound: %v", err)
	}
	section := readVector(t, "mage/g1.sgx_mage_table.bin")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Trust(ctx, sgx.Measurement{}, section); !errors.Is(err, context.Canceled) {
		t.Errorf("Trust with a cancelled context: %v", err)
	}
}
