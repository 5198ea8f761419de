// Package gramine measures and signs Gramine SGX enclaves (Gramine v1.5
// and later, checked against v1.9) exactly as Gramine's own signer does:
// the .manifest.sgx file, measured as is, the libpal.so it runs with, and
// the enclave layout Gramine's loader builds (see docs in
// ../shared/docs/GRAMINE.md and the golden vectors in testdata/gramine).
//
// The measurement order is Gramine's: ECREATE; the manifest at the top of
// the enclave; per-thread SSA, TCS, TLS, stacks and signal stacks; the
// libpal.so segments; then, without EDMM, one EADD record per page of the
// free heap.
package gramine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// ErrManifest is wrapped by every error about a manifest.
var ErrManifest = errors.New("gramine: manifest")

// Limits a manifest may ask for. Gramine's loader needs a power-of-two
// enclave size; without EDMM every page of the free heap is hashed (64
// bytes each), so the size is bounded more tightly there.
const (
	MaxEnclaveSize     = 1 << 46 // 64 TiB, with EDMM
	MaxEnclaveSizeNoEM = 1 << 36 // 64 GiB without EDMM: 1 GiB of EADD records to hash
	MaxThreads         = 4096    // 90 measured pages each
)

// Gramine's defaults (python/graminelibos/manifest.py).
const (
	defaultEnclaveSize     = "256M"
	defaultEnclaveSizeEDMM = "1024G"
	defaultThreads         = 4
)

// Manifest is what Gramine reads from a .manifest.sgx to measure and sign
// an enclave, with the defaults Gramine applies.
type Manifest struct {
	Raw         []byte // the file, measured as is
	EnclaveSize uint64 // sgx.enclave_size
	MaxThreads  int    // sgx.max_threads
	EDMM        bool   // sgx.edmm_enable
	Debug       bool   // sgx.debug
	ISVProdID   uint16 // sgx.isvprodid
	ISVSVN      uint16 // sgx.isvsvn
	UseExinfo   bool   // sgx.use_exinfo
	// CPUFeatures holds sgx.cpu_features: avx, avx512, amx ("required",
	// "disabled" or "unspecified"), mpx and pkru ("required" or
	// "disabled").
	CPUFeatures map[string]string
	// Tree is the whole parsed manifest.
	Tree map[string]any
}

// ParseManifest parses a .manifest.sgx. The file must be UTF-8 TOML with
// no NUL byte (Gramine appends one and reads the manifest as a C string).
func ParseManifest(b []byte) (*Manifest, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, a...))
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, bad("NUL byte at offset %d (the enclave reads the manifest as a C string)", i)
	}
	if !utf8.Valid(b) {
		return nil, bad("not UTF-8")
	}
	var tree map[string]any
	if err := toml.Unmarshal(b, &tree); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, bad("TOML at line %d, column %d: %s", row, col, de.Error())
		}
		return nil, bad("TOML: %v", err)
	}
	m := &Manifest{Raw: b, Tree: tree, MaxThreads: defaultThreads, CPUFeatures: map[string]string{
		"avx": "unspecified", "avx512": "unspecified", "amx": "unspecified", "mpx": "disabled", "pkru": "disabled",
	}}
	sgx := map[string]any{}
	if v, ok := tree["sgx"]; ok {
		t, ok := v.(map[string]any)
		if !ok {
			return nil, bad("sgx is not a table")
		}
		sgx = t
	}
	var err error
	boolean := func(key string, dst *bool) {
		if v, ok := sgx[key]; ok && err == nil {
			b, ok := v.(bool)
			if !ok {
				err = bad("sgx.%s is %T, want a boolean", key, v)
			}
			*dst = b
		}
	}
	integer := func(key string, max int64, dst func(int64)) {
		if v, ok := sgx[key]; ok && err == nil {
			n, ok := v.(int64)
			if !ok || n < 0 || n > max {
				err = bad("sgx.%s = %v, want an integer from 0 to %d", key, v, max)
				return
			}
			dst(n)
		}
	}
	boolean("edmm_enable", &m.EDMM)
	boolean("debug", &m.Debug)
	boolean("use_exinfo", &m.UseExinfo)
	integer("isvprodid", math.MaxUint16, func(n int64) { m.ISVProdID = uint16(n) })
	integer("isvsvn", math.MaxUint16, func(n int64) { m.ISVSVN = uint16(n) })
	integer("max_threads", MaxThreads, func(n int64) { m.MaxThreads = int(n) })
	if err != nil {
		return nil, err
	}
	if m.MaxThreads < 1 {
		return nil, bad("sgx.max_threads = 0: Gramine's loader needs at least one thread")
	}
	size := defaultEnclaveSize
	if m.EDMM {
		size = defaultEnclaveSizeEDMM
	}
	if v, ok := sgx["enclave_size"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, bad("sgx.enclave_size is %T, want a string such as \"256M\"", v)
		}
		size = s
	}
	if m.EnclaveSize, err = parseSize(size); err != nil {
		return nil, bad("sgx.enclave_size %q: %v", truncate(size, 40), err)
	}
	limit := uint64(MaxEnclaveSize)
	if !m.EDMM {
		limit = MaxEnclaveSizeNoEM
	}
	switch s := m.EnclaveSize; {
	case s == 0 || s&(s-1) != 0:
		return nil, bad("sgx.enclave_size %q is not a power of two (Gramine's loader refuses it)", size)
	case s > limit:
		return nil, bad("sgx.enclave_size %q is over %s (without EDMM every free page is measured)", size, sizeString(limit))
	}
	if v, ok := sgx["cpu_features"]; ok {
		t, ok := v.(map[string]any)
		if !ok {
			return nil, bad("sgx.cpu_features is not a table")
		}
		for k, v := range t {
			s, ok := v.(string)
			if _, known := m.CPUFeatures[k]; !known || !ok {
				continue // Gramine ignores features it does not know
			}
			switch {
			case s == "required" || s == "disabled":
			case s == "unspecified" && k != "mpx" && k != "pkru":
			default:
				return nil, bad("sgx.cpu_features.%s = %q is not allowed", k, truncate(s, 20))
			}
			m.CPUFeatures[k] = s
		}
	}
	return m, nil
}

// parseSize reads a size as Gramine does: an integer in Python's base-0
// syntax (decimal, 0x, 0o, 0b, underscores between digits), optionally
// followed by K, M or G.
func parseSize(s string) (uint64, error) {
	scale := uint64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		scale = 1 << 10
	case strings.HasSuffix(s, "M"):
		scale = 1 << 20
	case strings.HasSuffix(s, "G"):
		scale = 1 << 30
	}
	if scale != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 64)
	if err != nil {
		return 0, errors.New("not a size (an integer, optionally with K, M or G)")
	}
	if t := strings.TrimSpace(s); len(t) > 1 && t[0] == '0' && t[1] >= '0' && t[1] <= '9' {
		return 0, errors.New("leading zero in a decimal size") // Python's int(s, 0) refuses it
	}
	if n > math.MaxUint64/scale {
		return 0, errors.New("too large")
	}
	return n * scale, nil
}

func sizeString(n uint64) string {
	switch {
	case n >= 1<<40 && n%(1<<40) == 0:
		return fmt.Sprintf("%dT", n>>40)
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	}
	return fmt.Sprint(n)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
