package sgxsdk

import (
	"bytes"
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
