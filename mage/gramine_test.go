package mage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx/measure"
)

type gramineGroupVector struct {
	Constants struct {
		MaxThreads int  `json:"max_threads"`
		EDMM       bool `json:"edmm_enable"`
	} `json:"constants"`
	Payload   string `json:"table_payload_hex"`
	TableText string `json:"table_text"`
	Members   []struct {
		Name     string `json:"name"`
		Manifest string `json:"manifest_sgx"`
		MR       string `json:"mrenclave"`
		Entry    struct {
			Hex string `json:"entry_hex"`
		} `json:"entry"`
	} `json:"members"`
}

func gramineVectors(t testing.TB) (*gramineGroupVector, []byte, GramineConstants) {
	b, err := os.ReadFile("../testdata/gramine/group/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v gramineGroupVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	payload, _ := hex.DecodeString(v.Payload)
	raw, err := os.ReadFile("../testdata/gramine/fakepal.so")
	if err != nil {
		t.Fatal(err)
	}
	pal, err := gramine.ParseLibpal(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &v, payload, GramineConstants{Libpal: pal, MaxThreads: v.Constants.MaxThreads, EDMM: v.Constants.EDMM}
}

// TestDeriveGramine: every member of the reference Gramine group is
// derived from the table alone (the entry, the table pages, the suffix
// replayed from the constants), equal to its real MRENCLAVE as gramine
// measures its manifest file.
func TestDeriveGramine(t *testing.T) {
	v, payload, c := gramineVectors(t)
	if string(GramineTableText(payload)) != v.TableText {
		t.Fatalf("table line differs from the vectors'")
	}
	d, err := NewGramineDeriver(payload, c)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range v.Members {
		got, err := d.Derive(i)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != m.MR {
			t.Errorf("%s: derived %s, want %s", m.Name, got, m.MR)
		}
		raw, _ := os.ReadFile("../testdata/gramine/" + m.Manifest)
		man, err := gramine.ParseManifest(raw)
		if err != nil {
			t.Fatal(err)
		}
		e, err := gramine.NewEnclave(man, c.Libpal)
		if err != nil {
			t.Fatal(err)
		}
		if e.Measure() != got {
			t.Errorf("%s: derivation differs from measuring the manifest", m.Name)
		}
		// The entry is the state after ECREATE and the member's own
		// pages of the manifest.
		h := measure.New()
		h.ECreate(4, e.Layout.Size)
		for p := 0; p < len(raw)-len(v.TableText); p += PageSize {
			h.AddPage(e.Layout.Manifest+uint64(p), SecinfoFlags, raw[p:p+PageSize])
		}
		entry, _ := Entry{State: h.State(), Offset: e.Layout.Manifest + uint64(len(raw)-len(v.TableText))}.MarshalBinary()
		if hex.EncodeToString(entry) != m.Entry.Hex {
			t.Errorf("%s: entry %x, want %s", m.Name, entry, m.Entry.Hex)
		}
	}
	for _, bad := range [][]byte{nil, payload[:47], append(payload[:48:48], make([]byte, 48)...)} {
		if d, err := NewGramineDeriver(bad, c); err == nil {
			if _, err := d.Derive(1); err == nil {
				t.Errorf("payload of %d bytes derived", len(bad))
			}
		}
	}
}

// BenchmarkDeriveGramine: one Gramine member's derivation (table pages
// plus a 6 MB suffix) against raw SHA-256 over as many bytes.
func BenchmarkDeriveGramine(b *testing.B) {
	_, payload, c := gramineVectors(b)
	d, err := NewGramineDeriver(payload, c)
	if err != nil {
		b.Fatal(err)
	}
	const n = 5184 + 6082368 // the table page and the suffix
	buf := make([]byte, n)
	b.Run("derive", func(b *testing.B) {
		b.SetBytes(n)
		b.ReportAllocs()
		for b.Loop() {
			d.Derive(0)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			sha256.Sum256(buf)
		}
	})
	b.Run("ratio", func(b *testing.B) {
		var td, ts time.Duration
		for b.Loop() {
			t0 := time.Now()
			d.Derive(0)
			t1 := time.Now()
			sha256.Sum256(buf)
			td, ts = td+t1.Sub(t0), ts+time.Since(t1)
		}
		b.ReportMetric(float64(td)/float64(ts), "derive/sha256")
	})
}
