package sgx

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type manifest struct {
	Vectors []struct {
		ID       string `json:"id"`
		CSS      string `json:"css"`
		Key      string `json:"key"`
		Expected struct {
			MRENCLAVE string `json:"mrenclave"`
			MRSIGNER  string `json:"mrsigner_from_css_modulus"`
			ISVProdID int    `json:"isvprodid"`
			ISVSVN    int    `json:"isvsvn"`
		} `json:"expected"`
	} `json:"vectors"`
	Keys map[string]struct {
		Private  string `json:"private"`
		Public   string `json:"public"`
		MRSIGNER string `json:"mrsigner"`
	} `json:"keys"`
}

const vectors = "../testdata/sgxsdk"

func loadManifest(t testing.TB) *manifest {
	b, err := os.ReadFile(filepath.Join(vectors, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
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

// TestSigstructVectors parses every reference SIGSTRUCT, checks its fields and
// signature, and re-signs its signing material with the same key: PKCS#1 v1.5
// is deterministic, so the result must equal the reference byte for byte.
func TestSigstructVectors(t *testing.T) {
	m := loadManifest(t)
	for _, v := range m.Vectors {
		t.Run(v.ID, func(t *testing.T) {
			raw := read(t, v.CSS)
			s, err := ParseSigstruct(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.Marshal(), raw) {
				t.Fatal("Marshal does not round-trip")
			}
			if err := s.Verify(); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := s.MRSigner().String(); got != v.Expected.MRSIGNER {
				t.Errorf("MRSIGNER %s, want %s", got, v.Expected.MRSIGNER)
			}
			if got := hex.EncodeToString(s.EnclaveHash[:]); got != v.Expected.MRENCLAVE {
				t.Errorf("enclave hash %s, want %s", got, v.Expected.MRENCLAVE)
			}
			if int(s.ISVProdID) != v.Expected.ISVProdID || int(s.ISVSVN) != v.Expected.ISVSVN {
				t.Errorf("prodid/svn %d/%d", s.ISVProdID, s.ISVSVN)
			}
			if s.Date != 0x20261123 {
				t.Errorf("date %#x", s.Date)
			}
			key, err := LoadSigningKey(read(t, m.Keys[v.Key].Private))
			if err != nil {
				t.Fatal(err)
			}
			fresh := NewSigstruct()
			if err := fresh.ApplySigningMaterial(s.SigningMaterial()); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Sign(key); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fresh.Marshal(), raw) {
				t.Fatal("re-signed SIGSTRUCT differs from the reference")
			}
			pub, err := LoadPublicKey(read(t, m.Keys[v.Key].Public))
			if err != nil {
				t.Fatal(err)
			}
			if pub.N.Cmp(key.N) != 0 {
				t.Fatal("public key file does not match private key")
			}
		})
	}
}

func TestSigstructTamper(t *testing.T) {
	raw := read(t, "css/s1_e1_cA.css")
	for _, off := range []int{0, 20, 30, 200, 512, 600, 900, 930, 960, 1024, 1026, 1100, 1500} {
		b := bytes.Clone(raw)
		b[off] ^= 1
		s, err := ParseSigstruct(b)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Verify()
		if err == nil || !errors.Is(err, ErrSigstruct) && !errors.Is(err, ErrKey) {
			t.Errorf("flip at %d: Verify = %v, want an error", off, err)
		}
	}
	if _, err := ParseSigstruct(raw[:100]); err == nil {
		t.Error("short SIGSTRUCT accepted")
	}
}

func TestKeyChecks(t *testing.T) {
	m := loadManifest(t)
	for name, k := range m.Keys {
		key, err := LoadSigningKey(read(t, k.Private))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if MRSignerOf(&key.PublicKey).String() != k.MRSIGNER {
			t.Errorf("%s: MRSIGNER mismatch", name)
		}
	}
	if _, err := LoadSigningKey([]byte("garbage")); err == nil {
		t.Error("garbage key accepted")
	}
	if _, err := LoadSigningKey(read(t, "keys/k1.pub.pem")); err == nil {
		t.Error("public key accepted as private")
	}
}

func TestGenerateSigningKey(t *testing.T) {
	if testing.Short() {
		t.Skip("key generation is slow")
	}
	key, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadSigningKey(MarshalSigningKey(key))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigstruct()
	s.Date = DateFromTime(time.Now())
	if err := s.Sign(back); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKey(MarshalPublicKey(&key.PublicKey)); err != nil {
		t.Fatal(err)
	}
}

func TestDate(t *testing.T) {
	if d := DateFromTime(time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)); d != 0x20261123 {
		t.Fatalf("%#x", d)
	}
	if d, err := ParseDate("19991231"); err != nil || d != 0x19991231 {
		t.Fatalf("%#x %v", d, err)
	}
	for _, bad := range []string{"2026-11-23", "20261332", "1", ""} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
}

func FuzzParseSigstruct(f *testing.F) {
	f.Add(read(f, "css/s1_e1_cA.css"))
	f.Add(read(f, "css/g2_v3.css"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigstruct(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("round trip differs")
		}
		_ = s.Verify()
		_ = s.MRSigner()
	})
}
