package gramine

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx"
)

const vectors = "../testdata/gramine"

func read(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type vectorSet struct {
	Vectors []struct {
		ID       string `json:"id"`
		Dir      string `json:"dir"`
		Expected struct {
			MRENCLAVE string `json:"mrenclave"`
			Date      string `json:"date"`
		} `json:"expected"`
	} `json:"vectors"`
}

type groupSet struct {
	Constants struct {
		SigDate string `json:"sig_date"`
	} `json:"constants"`
	Members []struct {
		Name     string `json:"name"`
		Manifest string `json:"manifest_sgx"`
		Sig      string `json:"sig"`
		MR       string `json:"mrenclave"`
		Suffix   uint64 `json:"suffix_bytes_after_table"`
		Entry    struct {
			BytesHashed uint64 `json:"bytes_hashed"`
			TableOffset uint64 `json:"table_offset"`
		} `json:"entry"`
	} `json:"members"`
}

func pal(t testing.TB) *Libpal {
	p, err := ParseLibpal(read(t, "fakepal.so"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVectors reproduces every vector of Gramine v1.9's signer: the
// MRENCLAVE of each .manifest.sgx measured as is, and the .sig byte for
// byte.
func TestVectors(t *testing.T) {
	var vs vectorSet
	if err := json.Unmarshal(read(t, "manifest.json"), &vs); err != nil {
		t.Fatal(err)
	}
	k, err := sgx.LoadSigningKey(read(t, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := pal(t)
	type one struct{ name, manifest, sig, mr, date string }
	var all []one
	for _, v := range vs.Vectors {
		all = append(all, one{v.ID, filepath.Join(v.Dir, v.ID+".manifest.sgx"), filepath.Join(v.Dir, v.ID+".sig"), v.Expected.MRENCLAVE, v.Expected.Date})
	}
	var g groupSet
	if err := json.Unmarshal(read(t, "group/vectors.json"), &g); err != nil {
		t.Fatal(err)
	}
	for _, m := range g.Members {
		all = append(all, one{"group/" + m.Name, m.Manifest, m.Sig, m.MR, g.Constants.SigDate})
	}
	if len(all) != 9 {
		t.Fatalf("%d vectors, want 6 single and 3 group members", len(all))
	}
	for _, v := range all {
		t.Run(v.name, func(t *testing.T) {
			m, err := ParseManifest(read(t, v.manifest))
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewEnclave(m, p)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Measure().String(); got != v.mr {
				t.Fatalf("MRENCLAVE %s, want %s", got, v.mr)
			}
			date, err := time.Parse("2006-01-02", v.date)
			if err != nil {
				t.Fatal(err)
			}
			css, err := e.Sign(k, date)
			if err != nil {
				t.Fatal(err)
			}
			if want := read(t, v.sig); !bytes.Equal(css.Marshal(), want) {
				t.Errorf(".sig differs from Gramine's")
			}
		})
	}
	// The group members: the suffix after the table pages is what the
	// vectors say, and the prefix matches their entries.
	for _, m := range g.Members {
		man, _ := ParseManifest(read(t, m.Manifest))
		e, err := NewEnclave(man, p)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Layout.SuffixBytes(p); got != m.Suffix {
			t.Errorf("%s: suffix of %d bytes, want %d", m.Name, got, m.Suffix)
		}
		if e.Layout.Manifest+2*pageSize != m.Entry.TableOffset {
			t.Errorf("%s: table page at %#x, want %#x", m.Name, e.Layout.Manifest+2*pageSize, m.Entry.TableOffset)
		}
	}
}

// TestHostile: bad manifests and libpals get clear errors.
func TestHostile(t *testing.T) {
	base := string(read(t, "single/d1_t1_64M_debug/d1_t1_64M_debug.manifest.sgx"))
	for name, c := range map[string]struct {
		text, want string
	}{
		"NUL byte":           {base + "\x00", "NUL"},
		"broken TOML":        {base + "\n[sgx\n", "TOML"},
		"not a power of two": {strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "96M"`, 1), "power of two"},
		"huge without EDMM":  {strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "1024G"`, 1), "over"},
		"huge":               {strings.Replace(strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "0x8000000000000000"`, 1), "edmm_enable = false", "edmm_enable = true", 1), "over"},
		"not a size":         {strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "64Q"`, 1), "not a size"},
		"leading zero":       {strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "064M"`, 1), "leading zero"},
		"zero threads":       {strings.Replace(base, "max_threads = 1", "max_threads = 0", 1), "at least one"},
		"too many threads":   {strings.Replace(base, "max_threads = 1", "max_threads = 100000", 1), "max_threads"},
		"isvprodid over u16": {strings.Replace(base, "isvprodid = 0", "isvprodid = 65536", 1), "isvprodid"},
		"debug not a bool":   {strings.Replace(base, "debug = true", `debug = "yes"`, 1), "boolean"},
		"mpx unspecified":    {strings.Replace(base, `mpx = "disabled"`, `mpx = "unspecified"`, 1), "mpx"},
		"not UTF-8":          {base + "# \xff\n", "UTF-8"},
	} {
		_, err := ParseManifest([]byte(c.text))
		if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrManifest mentioning %q", name, err, c.want)
		}
	}
	// Too small for its layout.
	m, _ := ParseManifest([]byte(strings.Replace(base, `enclave_size = "64M"`, `enclave_size = "256K"`, 1)))
	if _, err := NewEnclave(m, pal(t)); !errors.Is(err, ErrTooSmall) {
		t.Errorf("256K enclave: %v", err)
	}
	// A libpal whose segments overlap, or that is truncated.
	raw := read(t, "fakepal.so")
	if _, err := ParseLibpal(raw[:100]); !errors.Is(err, ErrLibpal) {
		t.Errorf("truncated libpal: %v", err)
	}
	p := pal(t)
	over := bytes.Clone(raw)
	// Move the second PT_LOAD onto the first one's page.
	ph := int(leU64(over[32:]))
	n := 0
	for i := range int(leU16(over[56:])) {
		h := over[ph+i*56:]
		if leU32(h) == 1 {
			if n == 1 {
				putU64(h[16:], p.Segments[0].VAddr)
				putU64(h[24:], p.Segments[0].VAddr)
			}
			n++
		}
	}
	if _, err := ParseLibpal(over); !errors.Is(err, ErrLibpal) || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping segments: %v", err)
	}
}

func leU16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func leU32(b []byte) uint32 { return uint32(leU16(b)) | uint32(leU16(b[2:]))<<16 }
func leU64(b []byte) uint64 { return uint64(leU32(b)) | uint64(leU32(b[4:]))<<32 }
func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// TestFlattenManifest: every vector's manifest, re-emitted as flat dotted
// keys and padded to whole pages, means exactly what it meant (parsed
// back, the trees are equal), with no table header left.
func TestFlattenManifest(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(vectors, "single", "*", "*.manifest.sgx"))
	if len(files) != 6 {
		t.Fatalf("%d manifests", len(files))
	}
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		m, err := ParseManifest(raw)
		if err != nil {
			t.Fatal(err)
		}
		flat, err := FlattenManifest(m.Tree)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		padded := PadToPages(flat)
		if len(padded)%pageSize != 0 || !bytes.HasPrefix(padded, flat) {
			t.Fatalf("%s: padded to %d bytes", filepath.Base(f), len(padded))
		}
		for _, line := range strings.Split(string(flat), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "[") {
				t.Errorf("%s: a table header remains: %q", filepath.Base(f), line)
			}
		}
		back, err := ParseManifest(padded)
		if err != nil {
			t.Fatalf("%s: re-emitted manifest: %v\n%s", filepath.Base(f), err, flat)
		}
		if !reflect.DeepEqual(back.Tree, m.Tree) {
			t.Errorf("%s: re-emitted manifest means something else:\n%s", filepath.Base(f), flat)
		}
	}
}
