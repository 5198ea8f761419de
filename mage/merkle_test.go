package mage

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/sgx/measure"
	"github.com/magesgx/mage/sgxsdk"
)

// TestMerkleTree: every leaf's path verifies for every size up to 70, and
// the root is the same as the paths' construction gives.
func TestMerkleTree(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := make([][32]byte, n)
		for i := range leaves {
			leaves[i] = sha256.Sum256([]byte(fmt.Sprint(i)))
		}
		paths, root := merklePaths(leaves)
		if root != merkleRoot(leaves) {
			t.Fatalf("n=%d: roots differ", n)
		}
		for i := range leaves {
			if len(paths[i]) > maxDepth(uint64(n)) || !verifyPath(uint64(i), uint64(n), leaves[i], paths[i], root) {
				t.Fatalf("n=%d: leaf %d's path does not verify", n, i)
			}
			if n > 1 && verifyPath(uint64((i+1)%n), uint64(n), leaves[i], paths[i], root) {
				t.Fatalf("n=%d: leaf %d's path verifies at another index", n, i)
			}
		}
	}
}

// TestMerkleGroup: a Merkle group signs with one-page sections; every
// member, from its own section, derives every sampled peer's real
// MRENCLAVE from the peer's proof; hostile proofs are refused.
func TestMerkleGroup(t *testing.T) {
	members := groupOf(t, 40)
	g, err := SignGroup(context.Background(), members, SignOptions{Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Merkle: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Proofs) != 40 || len(g.Section) != PageSize {
		t.Fatalf("%d proofs, section of %d bytes", len(g.Proofs), len(g.Section))
	}
	derivers := map[int]*TableDeriver{}
	for _, i := range []int{0, 17, 39} {
		s, err := sgxsdk.ParseSigned(g.Members[i].File)
		if err != nil {
			t.Fatal(err)
		}
		if mr, err := s.Measure(t.Context()); err != nil || mr != g.Members[i].MRENCLAVE {
			t.Fatalf("member %d replays %s %v", i, mr, err)
		}
		d, err := NewSectionDeriver(s.ELF.MageSection(), nil)
		if err != nil || !d.IsMerkle() || d.Len() != 40 {
			t.Fatalf("member %d's section: %v", i, err)
		}
		derivers[i] = d
	}
	for i, d := range derivers {
		for j := range g.Members {
			mr, err := d.DeriveProof(g.Proofs[j])
			if err != nil || mr != g.Members[j].MRENCLAVE {
				t.Fatalf("member %d derives member %d as %s (%v), want %s", i, j, mr, err, g.Members[j].MRENCLAVE)
			}
			// A proof survives encoding.
			p, err := ParseMembershipProof(g.Proofs[j].Marshal())
			if err != nil || !bytes.Equal(p.Marshal(), g.Proofs[j].Marshal()) {
				t.Fatalf("proof %d round trip: %v", j, err)
			}
		}
	}
	d := derivers[0]
	// Another group's proofs.
	other, err := SignGroup(context.Background(), groupOf(t, 3), SignOptions{Date: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Merkle: true})
	if err != nil {
		t.Fatal(err)
	}
	clone := func(p *MembershipProof) *MembershipProof {
		q, _ := ParseMembershipProof(p.Marshal())
		return q
	}
	wrongPath := clone(g.Proofs[5])
	wrongPath.Path[0][3] ^= 1
	longPath := clone(g.Proofs[5])
	longPath.Path = append(longPath.Path, [32]byte{1})
	wrongIndex := clone(g.Proofs[5])
	wrongIndex.Index = 6
	wrongEntry := clone(g.Proofs[5])
	wrongEntry.Entry.State.H[0] ^= 1
	pastEnd := clone(g.Proofs[39])
	pastEnd.Index = 40
	for name, p := range map[string]*MembershipProof{
		"wrong path": wrongPath, "over-long path": longPath, "wrong index": wrongIndex, "altered entry": wrongEntry,
		"index past the group": pastEnd, "another group's member": other.Proofs[1],
	} {
		if _, err := d.DeriveProof(p); !errors.Is(err, ErrProof) {
			t.Errorf("%s: %v, want ErrProof", name, err)
		}
	}
	// Encodings a hostile peer could send.
	enc := g.Proofs[3].Marshal()
	for name, b := range map[string][]byte{
		"truncated":      enc[:40],
		"trailing bytes": append(bytes.Clone(enc), 0),
		"path too long":  append(append(bytes.Clone(enc[:72]), 200), make([]byte, 200*32)...),
		"unknown kind":   append(append(bytes.Clone(enc[:8]), 9), enc[9:]...),
	} {
		if _, err := ParseMembershipProof(b); !errors.Is(err, ErrProof) {
			t.Errorf("%s: %v, want ErrProof", name, err)
		}
	}
	// A classic table derives by index and has no proofs to check.
	if _, err := d.Derive(0); err == nil {
		t.Error("a Merkle table derived by index")
	}
}

// BenchmarkMembership: checking one peer of a Merkle group of N members
// (its path against the root, then its MRENCLAVE finished over the
// one-page section) against its floor, one page of records hashed plus
// log2(N) node hashes, in the same run (issue 14: goal at most 1.3).
func BenchmarkMembership(b *testing.B) {
	for _, n := range []int{85, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			d, section, proofs := syntheticMerkle(b, n)
			p := proofs[n/2]
			depth := bits.Len(uint(n - 1))
			h := measure.New().Batched()
			var tc, tf time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := d.DeriveProof(p); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				// The floor: one page's records and log2(N) node hashes.
				finish(h, p.Entry, section)
				var x [32]byte
				for range depth {
					x = nodeHash(x, x)
				}
				tc, tf = tc+t1.Sub(t0), tf+time.Since(t1)
			}
			b.ReportMetric(float64(tc)/float64(tf), "check/floor")
			b.ReportMetric(float64(tc.Nanoseconds())/float64(b.N)/1000, "µs/check")
		})
	}
}

// BenchmarkMerkleSign1000: a 1,000-member Merkle group of real members
// (the sample enclaves, each with its own heap size) signed in one
// stream, against its floor: for each member one RSA-3072 signature and
// SHA-256 over that member's measured bytes, in the same run.
func BenchmarkMerkleSign1000(b *testing.B) {
	const n = 1000
	members := groupOf(b, n)
	date := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var measured []int
	var signT, floorT time.Duration
	for b.Loop() {
		t0 := time.Now()
		g, err := SignGroupStream(b.Context(), n, func(i int) (Member, error) { return members[i], nil },
			SignOptions{Date: date, Workers: 1, Merkle: true}, func(*SignedMember) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if measured == nil {
			for _, m := range g.Members {
				measured = append(measured, int(m.Entry.State.Size)+len(g.Section)/PageSize*5184)
			}
		}
		t2 := time.Now()
		for _, size := range measured {
			d := sha256.Sum256(make([]byte, size))
			if _, err := rsa.SignPKCS1v15(nil, members[0].Key, crypto.SHA256, d[:]); err != nil {
				b.Fatal(err)
			}
		}
		signT, floorT = signT+t1.Sub(t0), floorT+time.Since(t2)
	}
	b.ReportMetric(float64(signT)/float64(floorT), "sign/floor")
	b.ReportMetric(float64(signT.Milliseconds())/float64(b.N), "ms/group")
}

// TestDeriveProofConcurrent: one deriver serves many handshakes at once
// (an attest.Member verifying several peers); concurrent derivations must
// each get their own result.
func TestDeriveProofConcurrent(t *testing.T) {
	n := 16
	d, _, proofs := syntheticMerkle(t, n)
	want := make([][32]byte, n)
	for i := range want {
		mr, err := d.DeriveProof(proofs[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = mr
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 200 {
				i := (g + k) % n
				if mr, err := d.DeriveProof(proofs[i]); err != nil || mr != want[i] {
					errs <- fmt.Errorf("member %d: %s %v", i, mr, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// syntheticMerkle is a Merkle group of n synthetic SDK members: the
// deriver of its one-page section, the section, and every proof.
func syntheticMerkle(tb testing.TB, n int) (*TableDeriver, []byte, []*MembershipProof) {
	tb.Helper()
	kinds := make([]Kind, n)
	entries := make([]Entry, n)
	for i := range entries {
		kinds[i], entries[i] = KindSDK, Entry{State: measure.State{Size: 64 * uint64(i+1), H: [8]uint32{uint32(i)}}, Offset: 0x3000}
	}
	t, proofs, err := NewMerkleTable(kinds, entries)
	if err != nil {
		tb.Fatal(err)
	}
	t.SDKSectionSize = PageSize
	section := make([]byte, PageSize)
	copy(section, t.Marshal())
	d, err := NewSectionDeriver(section, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return d, section, proofs
}
