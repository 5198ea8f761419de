package mage

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/magesgx/mage/sgxsdk"
)

// bytesPerPage is what deriving one member hashes per section page: one EADD
// record and 16 EEXTEND records with their 256-byte chunks.
const bytesPerPage = 64 + 16*(64+256)

// fullTable returns a one-page section holding 85 entries (the capacity).
func fullTable(b *testing.B) []byte {
	section := readVector(b, "mage/g2.sgx_mage_table.bin")
	tab, err := ParseTable(section)
	if err != nil {
		b.Fatal(err)
	}
	full := &Table{}
	for i := range Capacity(PageSize) {
		e := tab.Entries[i%len(tab.Entries)]
		e.Offset += uint64(i/len(tab.Entries)) * PageSize
		full.Entries = append(full.Entries, e)
	}
	out, err := full.Marshal(PageSize)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkDerive compares deriving one member from a one-page table (the
// paper's 21.7 µs operation) with raw SHA-256 over the same 5,184 bytes.
// Report the ratio Derive/SHA256 of the two ns/op figures from one run.
func BenchmarkDerive(b *testing.B) {
	section := readVector(b, "mage/g1.sgx_mage_table.bin")
	tab, err := ParseTable(section)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Finish", func(b *testing.B) {
		b.SetBytes(bytesPerPage)
		for b.Loop() {
			if _, err := Finish(tab.Entries[1], section); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Deriver", func(b *testing.B) {
		d, err := NewDeriver(section)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(bytesPerPage)
		for b.Loop() {
			if _, err := d.Derive(1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Derive", func(b *testing.B) {
		b.SetBytes(bytesPerPage)
		for b.Loop() {
			if _, err := Derive(section, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SHA256", func(b *testing.B) {
		buf := make([]byte, bytesPerPage)
		b.SetBytes(bytesPerPage)
		for b.Loop() {
			sha256.Sum256(buf)
		}
	})
}

// BenchmarkDeriveAll derives all 85 members of a full page with 1 and 2
// workers; the speed-up is the ratio of the two ns/op figures.
func BenchmarkDeriveAll(b *testing.B) {
	section := fullTable(b)
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(85 * bytesPerPage)
			for b.Loop() {
				if _, err := DeriveAllContext(b.Context(), section, w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// groupOf returns n members built from the g2 enclaves, each with its own
// heap size so every member's MRENCLAVE differs, all signed with g2's key.
func groupOf(b testing.TB, n int) []Member {
	base, _ := groupMembers(b, "g2")
	members := make([]Member, n)
	for i := range members {
		m := base[i%len(base)]
		cfg, err := sgxsdk.ParseConfig([]byte(fmt.Sprintf(
			"<EnclaveConfiguration><ProdID>200</ProdID><ISVSVN>5</ISVSVN><HeapMaxSize>%#x</HeapMaxSize><TCSNum>2</TCSNum></EnclaveConfiguration>",
			0x100000+(i/len(base))*0x1000)))
		if err != nil {
			b.Fatal(err)
		}
		members[i] = Member{Name: fmt.Sprint(i), ELF: m.ELF, Config: cfg, Key: m.Key}
	}
	return members
}

// BenchmarkSignGroup signs groups of 3, 10 and 85 members in one call
// (measure each once, sign in parallel). Compare ns/op with the reference
// flow (one sgx_sign process per genmage and per signmage: about 64 ms for
// 3 members on this machine) and read ms/member for the per-member cost.
func BenchmarkSignGroup(b *testing.B) {
	for _, n := range []int{3, 10, 85} {
		members := groupOf(b, n)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := SignGroup(b.Context(), members, SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(n), "ms/member")
		})
	}
}

// BenchmarkSignFloor measures group signing per member against its floor,
// in the same run: one RSA-3072 signature plus SHA-256 over the bytes the
// member's measurement hashes (its prefix and the section's records). The
// members stream through one worker, so the ratio is CPU per member over
// the floor (issue 13: goal at most 1.2).
func BenchmarkSignFloor(b *testing.B) {
	const n = 85
	members := groupOf(b, n)
	date := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	g, err := SignGroup(b.Context(), members, SignOptions{Date: date})
	if err != nil {
		b.Fatal(err)
	}
	var measured uint64
	for _, m := range g.Members {
		measured += m.Entry.State.Size + uint64(len(g.Section)/PageSize)*5184
	}
	buf := make([]byte, measured/n)
	key := members[0].Key
	var signT, floorT time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := SignGroupStream(b.Context(), n, func(i int) (Member, error) { return members[i], nil },
			SignOptions{Date: date, Workers: 1}, func(*SignedMember) error { return nil }); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for range n {
			d := sha256.Sum256(buf)
			if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:]); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		signT, floorT = signT+t1.Sub(t0), floorT+t2.Sub(t1)
	}
	b.ReportMetric(float64(signT.Microseconds())/float64(b.N*n), "µs/member")
	b.ReportMetric(float64(floorT.Microseconds())/float64(b.N*n), "floor-µs/member")
	b.ReportMetric(float64(signT)/float64(floorT), "member/floor")
}
