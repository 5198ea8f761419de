//go:build cgo

package libmage

import (
	"context"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgxsdk"
)

// BenchmarkDeriveKinds reports, for each table kind, the C derivation of
// one member against the C library's own SHA-256 over the same number of
// bytes, interleaved in one run: a versioned SDK member (the section's
// 5,184 bytes of records), a Merkle SDK member (the same records, plus the
// two blocks of its leaf and of each of its log2(N) nodes), and a Gramine
// member (its
// table line's pages and the replayed suffix, counted from Go's layout).
func BenchmarkDeriveKinds(b *testing.B) {
	ms, palRaw, pal := mixedMembers(b, "d5_edmm_t1_64M_nodebug")
	cpal := cLibpal(b, palRaw)
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	v, err := mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date})
	if err != nil {
		b.Fatal(err)
	}
	m, err := mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date, Merkle: true})
	if err != nil {
		b.Fatal(err)
	}
	proof := m.Proofs[0].Marshal()
	// The bytes a Gramine derivation hashes after its entry: the
	// member's full measurement less what its entry already holds.
	gramBytes := func(g *mage.SignedAnyGroup) int {
		e := g.Members[2].Entry
		return int(gramineTotal(b, g.Members[2].File, pal) - e.State.Size)
	}
	cases := []struct {
		name   string
		bytes  int
		derive func()
	}{
		{"versioned-sdk", 5184, func() { DerivePal(v.Section, cpal, 0) }},
		// The leaf (57 bytes) and each node (65 bytes) hash two blocks.
		{"merkle-sdk", 5184 + 128*(1+len(m.Proofs[0].Path)), func() { MerkleDerive(m.Section, cpal, proof) }},
		{"versioned-gramine", gramBytes(v), func() { DerivePal(v.Section, cpal, 2) }},
	}
	for _, c := range cases {
		data := make([]byte, c.bytes)
		b.Run(c.name, func(b *testing.B) {
			interleave(b, c.derive, func() { SHA256(data) }, "derive/sha256")
		})
	}
	b.Run("ed25519-verify", func(b *testing.B) {
		BenchmarkEd25519Verify(b)
	})
}

// gramineTotal is the number of bytes a Gramine member's measurement
// hashes: ECREATE, its manifest pages, and the suffix.
func gramineTotal(b testing.TB, manifest []byte, pal *gramine.Libpal) uint64 {
	m, err := gramine.ParseManifest(manifest)
	if err != nil {
		b.Fatal(err)
	}
	e, err := gramine.NewEnclave(m, pal)
	if err != nil {
		b.Fatal(err)
	}
	pages := (e.Layout.ManifestLen + 1 + 4095) / 4096
	return 64 + pages*5184 + e.Layout.SuffixBytes(pal)
}

// BenchmarkDeriveVM reports the C derivation of confidential VM members
// against the C library's own SHA-512 (the SHA-384 core) over the blocks
// the derivation hashes with it, in one run. Each derivation also parses
// the section and hashes the table with SHA-256 (its payload, which the
// command line or RTMR3 binds), as the library keeps no state; the
// baseline counts those SHA-256 bytes too.
func BenchmarkDeriveVM(b *testing.B) {
	g := vmGroup(b)
	s, err := sgxsdk.ParseSigned(g.Members[0].File)
	if err != nil {
		b.Fatal(err)
	}
	sec := s.ELF.MageSection()
	table := len(g.Payload)
	// SNP (3 vCPUs): the 4 KiB hashes page (33 blocks with its padding),
	// then the PAGE_INFO of it and of each of the 18 pages after it (112
	// bytes: two blocks each with the padding), 71 blocks in all; and the
	// command line's SHA-256. TDX: the event and the extend, a block each.
	// A run of n bytes is ceil((n+17)/128) blocks.
	cases := []struct {
		name   string
		sha512 int // bytes hashed as one run with the same number of blocks
		sha256 int
		derive func()
	}{
		{"snp", 71*128 - 17, table + 100, func() { DeriveSNP(sec, 1) }},
		{"tdx", 2*128 - 17, table, func() { DeriveTDX(sec, 2) }},
	}
	for _, c := range cases {
		d512, d256 := make([]byte, c.sha512), make([]byte, c.sha256)
		b.Run(c.name, func(b *testing.B) {
			interleave(b, c.derive, func() { SHA512(d512); SHA256(d256) }, "derive/hash")
		})
	}
}

// interleave times derive against hash, a hundred calls of each in turn,
// and reports the time of a derivation and the ratio of the two.
func interleave(b *testing.B, derive, hash func(), ratio string) {
	var d, s time.Duration
	const k = 100
	for b.Loop() {
		t0 := time.Now()
		for range k {
			derive()
		}
		t1 := time.Now()
		for range k {
			hash()
		}
		d, s = d+t1.Sub(t0), s+time.Since(t1)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N*k)/1000, "µs/derive")
	b.ReportMetric(float64(d)/float64(s), ratio)
}
