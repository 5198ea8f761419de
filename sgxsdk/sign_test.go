package sgxsdk

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/magesgx/mage/sgx"
)

const vectors = "../testdata/sgxsdk"

type vector struct {
	ID              string `json:"id"`
	Mode            string `json:"mode"`
	Enclave         string `json:"enclave"`
	Key             string `json:"key"`
	Config          string `json:"config"`
	Signed          string `json:"signed"`
	CSS             string `json:"css"`
	Dump            string `json:"dump"`
	Group           string `json:"group"`
	Index           int    `json:"index"`
	SigningMaterial string `json:"signing_material"`
	Signature       string `json:"signature"`
	Expected        struct {
		MRENCLAVE string `json:"mrenclave"`
	} `json:"expected"`
	MageEntry struct {
		Raw48 string `json:"raw48_hex"`
	} `json:"mage_entry"`
}

type manifest struct {
	Vectors  []vector `json:"vectors"`
	Enclaves map[string]struct {
		File string `json:"file"`
	} `json:"enclaves"`
	Keys map[string]struct {
		Private string `json:"private"`
		Public  string `json:"public"`
	} `json:"keys"`
	Configs map[string]struct {
		File string `json:"file"`
	} `json:"configs"`
}

func loadManifest(t testing.TB) *manifest {
	var m manifest
	if err := json.Unmarshal(read(t, "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func read(t testing.TB, p string) []byte {
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (m *manifest) inputs(t testing.TB, v vector) ([]byte, *Config) {
	elf := read(t, m.Enclaves[v.Enclave].File)
	var cfg *Config
	if v.Config != "" {
		c, err := ParseConfig(read(t, m.Configs[v.Config].File))
		if err != nil {
			t.Fatalf("%s: %v", v.Config, err)
		}
		cfg = c
	}
	return elf, cfg
}

const date = 0x20261123

// TestSignVectors signs every "sign" vector and compares the signed file,
// the SIGSTRUCT and MRENCLAVE with the reference tool's, byte for byte.
func TestSignVectors(t *testing.T) {
	m := loadManifest(t)
	for _, v := range m.Vectors {
		if v.Mode != "sign" {
			continue
		}
		t.Run(v.ID, func(t *testing.T) {
			elf, cfg := m.inputs(t, v)
			key, err := sgx.LoadSigningKey(read(t, m.Keys[v.Key].Private))
			if err != nil {
				t.Fatal(err)
			}
			out, css, err := Sign(elf, cfg, key, date, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := sgx.Measurement(css.EnclaveHash).String(); got != v.Expected.MRENCLAVE {
				t.Errorf("MRENCLAVE %s, want %s", got, v.Expected.MRENCLAVE)
			}
			if !bytes.Equal(css.Marshal(), read(t, v.CSS)) {
				t.Errorf("SIGSTRUCT differs from the reference")
			}
			want := read(t, v.Signed)
			if !bytes.Equal(out, want) {
				t.Errorf("signed file differs from the reference at byte %#x", firstDiff(out, want))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSignedVectors loads every reference signed file through the loader
// path (its own metadata, no config) and checks its MRENCLAVE, then checks
// our dump text against the reference dump, byte for byte.
func TestSignedVectors(t *testing.T) {
	m := loadManifest(t)
	for _, v := range m.Vectors {
		t.Run(v.ID, func(t *testing.T) {
			file := read(t, v.Signed)
			s, err := ParseSigned(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Metadata) != 3 {
				t.Errorf("%d metadata structures, want 3", len(s.Metadata))
			}
			mr, err := s.Measure(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if mr.String() != v.Expected.MRENCLAVE {
				t.Errorf("replayed MRENCLAVE %s, want %s", mr, v.Expected.MRENCLAVE)
			}
			// A loader of SDK 2.0 (metadata 2.1) or 1.9 (metadata 1.4)
			// reads a compatible copy; it must measure the same.
			for _, md := range s.Metadata[1:] {
				got, err := s.MeasureWith(t.Context(), md)
				if err != nil || got != mr {
					t.Errorf("metadata %#x: MRENCLAVE %s, %v", md.Version, got, err)
				}
			}
			var b bytes.Buffer
			if err := s.Dump(&b); err != nil {
				t.Fatal(err)
			}
			if want := read(t, v.Dump); !bytes.Equal(b.Bytes(), want) {
				t.Errorf("dump differs from the reference at byte %d", firstDiff(b.Bytes(), want))
			}
		})
	}
}

// TestTwoStepVector reproduces gendata + external signature + catsig.
func TestTwoStepVector(t *testing.T) {
	m := loadManifest(t)
	for _, v := range m.Vectors {
		if v.Mode != "gendata+catsig" {
			continue
		}
		elf, cfg := m.inputs(t, v)
		im, err := Prepare(elf, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		mr, err := im.Measure()
		if err != nil {
			t.Fatal(err)
		}
		css := im.Sigstruct(mr, date)
		if !bytes.Equal(css.SigningMaterial(), read(t, v.SigningMaterial)) {
			t.Fatal("signing material differs from the reference")
		}
		pub, err := sgx.LoadPublicKey(read(t, m.Keys[v.Key].Public))
		if err != nil {
			t.Fatal(err)
		}
		if err := css.SetSignature(pub, read(t, v.Signature)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(css.Marshal(), read(t, v.CSS)) {
			t.Fatal("SIGSTRUCT differs from the reference")
		}
		out, err := im.SignedFile(css)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, read(t, v.Signed)) {
			t.Fatal("signed file differs from the reference")
		}
	}
}

// TestMageVectors checks, for every member of the reference groups, that
// the state before .sgx_mage is the member's genmage entry, and that signing
// with the group's table gives the reference signed file.
func TestMageVectors(t *testing.T) {
	m := loadManifest(t)
	n := 0
	for _, v := range m.Vectors {
		if v.Mode != "signmage" {
			continue
		}
		n++
		t.Run(v.ID, func(t *testing.T) {
			elf, cfg := m.inputs(t, v)
			im, err := Prepare(elf, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := im.MeasurePrefix()
			if err != nil {
				t.Fatal(err)
			}
			rva, _, ok := im.MageSection()
			if !ok {
				t.Fatal("no .sgx_mage section")
			}
			entry := make([]byte, 0, 48)
			entry = binary.LittleEndian.AppendUint64(entry, st.Size)
			entry = binary.LittleEndian.AppendUint64(entry, rva)
			for _, w := range st.H {
				entry = binary.LittleEndian.AppendUint32(entry, w)
			}
			if hex.EncodeToString(entry) != v.MageEntry.Raw48 {
				t.Errorf("genmage entry %x, want %s", entry, v.MageEntry.Raw48)
			}
			if err := im.SetMageSection(read(t, "mage/"+v.Group+".sgx_mage_table.bin")); err != nil {
				t.Fatal(err)
			}
			key, err := sgx.LoadSigningKey(read(t, m.Keys[v.Key].Private))
			if err != nil {
				t.Fatal(err)
			}
			mr, err := im.Measure()
			if err != nil {
				t.Fatal(err)
			}
			css := im.Sigstruct(mr, date)
			if err := css.Sign(key); err != nil {
				t.Fatal(err)
			}
			out, err := im.SignedFile(css)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, read(t, v.Signed)) {
				t.Errorf("signed file differs at %#x", firstDiff(out, read(t, v.Signed)))
			}
		})
	}
	if n != 13 {
		t.Fatalf("%d signmage vectors, want 13", n)
	}
}
