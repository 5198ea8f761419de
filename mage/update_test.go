package mage

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

func testUpdateKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// rolling is a group of five (epoch 0) and its successor (epoch 1), which
// keeps members 0, 1 and 2, drops 3 and 4, and adds a new member (index
// 3 in the successor).
type rolling struct {
	key    ed25519.PrivateKey
	g0, g1 *SignedGroup
	extra  []Member
}

func signRolling(t *testing.T) *rolling {
	t.Helper()
	members := groupOf(t, 7)
	r := &rolling{key: testUpdateKey(t, 1), extra: members[6:]}
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var err error
	r.g0, err = SignGroup(t.Context(), members[:5], SignOptions{Date: date, Merkle: true, UpdateKey: r.key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.g0.LineageProofs) != 5 || r.g0.Lineage.Head().Epoch != 0 || !r.g0.Lineage.Head().Updatable {
		t.Fatalf("genesis: %d lineage proofs, head %+v", len(r.g0.LineageProofs), r.g0.Lineage.Head())
	}
	r.g1, err = SignGroup(t.Context(), members[5:6], SignOptions{Date: date, Merkle: true, Successor: &Successor{
		Lineage: r.g0.Lineage, Key: r.key, Keep: r.g0.LineageProofs[:3],
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.g1.LineageProofs) != 4 || r.g1.Members[0].Index != 3 || r.g1.Lineage.Head().Epoch != 1 {
		t.Fatalf("successor: %d lineage proofs, new member at %d", len(r.g1.LineageProofs), r.g1.Members[0].Index)
	}
	return r
}

func deriverOf(t *testing.T, file []byte) *TableDeriver {
	t.Helper()
	s, err := sgxsdk.ParseSigned(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewSectionDeriver(s.ELF.MageSection(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// reparse sends a proof through its encoding, as a handshake does.
func reparse(t *testing.T, p *LineageProof) *LineageProof {
	t.Helper()
	q, err := ParseLineageProof(p.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.Marshal(), p.Marshal()) {
		t.Fatal("lineage proof does not survive its encoding")
	}
	return q
}

// TestRollingUpdate: old and new members accept each other both ways;
// kept members are finished over the table they measured; the dropped
// members are refused by every member that knows the successor.
func TestRollingUpdate(t *testing.T) {
	r := signRolling(t)
	oldD := deriverOf(t, r.g0.Members[0].File)
	newD := deriverOf(t, r.g1.Members[0].File)
	newMR := r.g1.Members[0].MRENCLAVE

	// An old member whose host was not given the successor yet.
	oldV, self, err := NewLineageVerifier(oldD, reparse(t, r.g0.LineageProofs[0]))
	if err != nil || self.MRENCLAVE != r.g0.Members[0].MRENCLAVE || oldV.Epoch() != 0 {
		t.Fatalf("old member derives itself as %+v (%v)", self, err)
	}
	// Before it knows the successor, it still accepts member 4.
	if m, err := oldV.Verify(reparse(t, r.g0.LineageProofs[4])); err != nil || m.MRENCLAVE != r.g0.Members[4].MRENCLAVE {
		t.Fatalf("old member, epoch 0, verifies member 4: %+v %v", m, err)
	}
	// It verifies the new member by the statement, and learns epoch 1.
	m, err := oldV.Verify(reparse(t, r.g1.LineageProofs[3]))
	if err != nil || m.MRENCLAVE != newMR || m.Index != 3 || m.Epoch != 1 || m.Measured != 1 {
		t.Fatalf("old member verifies the new one: %+v %v (want %s)", m, err, newMR)
	}
	if oldV.Epoch() != 1 {
		t.Fatalf("the old member knows epoch %d after seeing the successor", oldV.Epoch())
	}
	// Now it refuses the dropped member, and accepts kept members proved
	// in the successor (finished over the table they measured).
	if _, err := oldV.Verify(reparse(t, r.g0.LineageProofs[4])); !errors.Is(err, ErrStale) {
		t.Fatalf("old member, epoch 1, verifies dropped member 4: %v", err)
	}
	if m, err := oldV.Verify(reparse(t, r.g1.LineageProofs[1])); err != nil || m.MRENCLAVE != r.g0.Members[1].MRENCLAVE || m.Measured != 0 {
		t.Fatalf("old member verifies kept member 1: %+v %v", m, err)
	}

	// The new member verifies old ones by hash.
	newV, self, err := NewLineageVerifier(newD, reparse(t, r.g1.LineageProofs[3]))
	if err != nil || self.MRENCLAVE != newMR {
		t.Fatalf("new member derives itself as %+v (%v)", self, err)
	}
	for i := range 3 {
		m, err := newV.Verify(reparse(t, r.g1.LineageProofs[i]))
		if err != nil || m.MRENCLAVE != r.g0.Members[i].MRENCLAVE || m.Index != uint64(i) {
			t.Fatalf("new member verifies kept member %d: %+v %v", i, m, err)
		}
	}
	for _, i := range []int{3, 4} {
		if _, err := newV.Verify(reparse(t, r.g0.LineageProofs[i])); !errors.Is(err, ErrStale) {
			t.Fatalf("new member verifies dropped member %d: %v", i, err)
		}
		// Its epoch-0 proof, dressed in the successor's lineage.
		forged := *r.g1.LineageProofs[0]
		forged.Measured, forged.Proof = 0, r.g0.LineageProofs[i].Proof
		if _, err := newV.Verify(reparse(t, &forged)); !errors.Is(err, ErrProof) {
			t.Fatalf("dropped member %d with its old proof in the new lineage: %v", i, err)
		}
	}

	// An old member whose host was given the successor knows it at once.
	upd, self, err := NewLineageVerifier(deriverOf(t, r.g0.Members[1].File), r.g1.LineageProofs[1])
	if err != nil || self.MRENCLAVE != r.g0.Members[1].MRENCLAVE || upd.Epoch() != 1 {
		t.Fatalf("updated old member: %+v %v", self, err)
	}
	if _, err := upd.Verify(r.g0.LineageProofs[3]); !errors.Is(err, ErrStale) {
		t.Fatalf("updated old member verifies dropped member 3: %v", err)
	}
	// A dropped member cannot start from the successor's lineage.
	forged := *r.g1.LineageProofs[0]
	forged.Measured, forged.Proof = 0, r.g0.LineageProofs[3].Proof
	if _, _, err := NewLineageVerifier(deriverOf(t, r.g0.Members[3].File), &forged); !errors.Is(err, ErrProof) {
		t.Fatalf("dropped member starting from the successor: %v", err)
	}

	// The lineage files round-trip.
	l, err := ParseLineage(r.g1.Lineage.Marshal())
	if err != nil || !bytes.Equal(l.Marshal(), r.g1.Lineage.Marshal()) || l.Verify() != nil {
		t.Fatalf("lineage round trip: %v", err)
	}
}

// TestHostileLineage: wrong paths, over-long paths, another group's root,
// a successor signed by a wrong key, a replayed older successor, a fork,
// and successors of groups without a usable update key are all refused.
func TestHostileLineage(t *testing.T) {
	r := signRolling(t)
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	newD := deriverOf(t, r.g1.Members[0].File)
	verifier := func() *LineageVerifier {
		v, _, err := NewLineageVerifier(newD, r.g1.LineageProofs[3])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	good := r.g1.LineageProofs[1]
	clone := func() *LineageProof {
		p, err := ParseLineageProof(good.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("wrong path", func(t *testing.T) {
		p := clone()
		p.Proof.Path[0][0] ^= 1
		if _, err := verifier().Verify(p); !errors.Is(err, ErrProof) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("over-long path", func(t *testing.T) {
		p := clone()
		p.Proof.Path = append(p.Proof.Path, p.Proof.Path[0])
		if _, err := verifier().Verify(p); !errors.Is(err, ErrProof) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("another group's root", func(t *testing.T) {
		other, err := SignGroup(t.Context(), groupOf(t, 3), SignOptions{Date: date, Merkle: true, UpdateKey: r.key.Public().(ed25519.PublicKey)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifier().Verify(other.LineageProofs[0]); !errors.Is(err, ErrLineage) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("successor signed by a wrong key", func(t *testing.T) {
		p := clone()
		p.Lineage.Statements[0] = ed25519.Sign(testUpdateKey(t, 2), SuccessorStatement(p.Lineage.Tables[0].Hash(), p.Lineage.Tables[1].Hash(), 1))
		oldV, _, err := NewLineageVerifier(deriverOf(t, r.g0.Members[0].File), r.g0.LineageProofs[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := oldV.Verify(p); !errors.Is(err, ErrLineage) || oldV.Epoch() != 0 {
			t.Fatalf("got %v, epoch %d", err, oldV.Epoch())
		}
		// A wrong key cannot sign a successor either.
		if _, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: r.g0.Lineage, Key: testUpdateKey(t, 2)}}); !errors.Is(err, ErrLineage) {
			t.Fatalf("signing with a wrong key: %v", err)
		}
	})
	t.Run("replayed older successor", func(t *testing.T) {
		// Epoch 2 follows; a member that knows it refuses epoch-1 proofs,
		// and a statement of epoch 1 does not make epoch 2.
		g2, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: r.g1.Lineage, Key: r.key, Keep: r.g1.LineageProofs[:2]}})
		if err != nil {
			t.Fatal(err)
		}
		v := verifier()
		if _, err := v.Verify(g2.LineageProofs[2]); err != nil || v.Epoch() != 2 {
			t.Fatalf("learning epoch 2: %v", err)
		}
		if _, err := v.Verify(clone()); !errors.Is(err, ErrStale) {
			t.Fatalf("replayed epoch 1: %v", err)
		}
		p, err := ParseLineageProof(g2.LineageProofs[0].Marshal())
		if err != nil {
			t.Fatal(err)
		}
		p.Lineage.Statements[1] = p.Lineage.Statements[0]
		if _, err := verifier().Verify(p); !errors.Is(err, ErrLineage) {
			t.Fatalf("epoch 1's statement for epoch 2: %v", err)
		}
	})
	t.Run("fork", func(t *testing.T) {
		// Another successor of epoch 0, validly signed: a member that
		// knows the first one refuses it.
		fork, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: r.g0.Lineage, Key: r.key, Keep: r.g0.LineageProofs[3:]}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifier().Verify(fork.LineageProofs[0]); !errors.Is(err, ErrLineage) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no update key", func(t *testing.T) {
		plain, err := SignGroup(t.Context(), groupOf(t, 3), SignOptions{Date: date, Merkle: true})
		if err != nil {
			t.Fatal(err)
		}
		d := deriverOf(t, plain.Members[0].File)
		if _, _, err := NewLineageVerifier(d, good); !errors.Is(err, ErrLineage) {
			t.Fatalf("a plain Merkle member following a lineage: %v", err)
		}
		if _, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, UpdateKey: r.key.Public().(ed25519.PublicKey)}); !errors.Is(err, ErrLineage) {
			t.Fatalf("an update key on a classic table: %v", err)
		}
	})
	t.Run("final group", func(t *testing.T) {
		final, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: r.g1.Lineage, Key: r.key, NextKey: make(ed25519.PublicKey, 32)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := SignGroup(t.Context(), groupOf(t, 2), SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: final.Lineage, Key: r.key}}); !errors.Is(err, ErrLineage) {
			t.Fatalf("a successor of a final group: %v", err)
		}
	})
	t.Run("kept member not in the predecessor", func(t *testing.T) {
		g2, err := SignGroup(t.Context(), r.extra, SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: r.g1.Lineage, Key: r.key}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := SignGroup(t.Context(), groupOf(t, 2), SignOptions{Date: date, Merkle: true, Successor: &Successor{Lineage: g2.Lineage, Key: r.key, Keep: r.g0.LineageProofs[4:]}}); err == nil {
			t.Fatal("a dropped member kept")
		}
	})
}

func FuzzParseLineageProof(f *testing.F) {
	key := testUpdateKey(f, 1)
	t0, proofs, err := NewUpdatableTable([]Kind{KindSDK, KindSDK}, []Entry{{Offset: 0x1000, State: measureState(64)}, {Offset: 0x2000, State: measureState(128)}}, key.Public().(ed25519.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	t0.SDKSectionSize = PageSize
	l := &Lineage{Tables: []*VersionedTable{t0}}
	t1, proofs1, err := NewSuccessorTable(t0, []Kind{KindSDK}, []Entry{{Offset: 0x1000, State: measureState(64)}}, key.Public().(ed25519.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	l1, err := l.Extend(t1, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add((&LineageProof{Lineage: *l, Proof: proofs[1]}).Marshal())
	f.Add((&LineageProof{Measured: 1, Lineage: *l1, Proof: proofs1[0]}).Marshal())
	f.Add((&LineageProof{Measured: 0, Lineage: *l1, Proof: proofs1[0], MeasuredProof: proofs[0]}).Marshal())
	old := (&LineageProof{Measured: 1, Lineage: *l1, Proof: proofs1[0]}).Marshal()
	old[7] = 1 // a version 1 proof
	f.Add(old)
	f.Add(l1.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParseLineageProof(b); err == nil {
			if q, err := ParseLineageProof(p.Marshal()); err != nil || !bytes.Equal(q.Marshal(), p.Marshal()) {
				t.Fatalf("re-encoding: %v", err)
			}
		}
		if l, err := ParseLineage(b); err == nil && !bytes.Equal(l.Marshal(), b) {
			t.Fatal("lineage does not re-encode to its input")
		}
	})
}

// TestUpdatableTableEncoding: the header and layout of an updatable table,
// and the malformed ones refused.
func TestUpdatableTableEncoding(t *testing.T) {
	tab := &VersionedTable{Merkle: true, Count: 5, Root: [32]byte{1}, Updatable: true, UpdateKey: [32]byte{2}, Epoch: 3, Predecessor: [32]byte{3}, SDKSectionSize: PageSize}
	b := tab.Marshal()
	if len(b) != updatableTableSize || b[12] != FlagMerkle|FlagUpdateKey || b[28] != 3 || b[96] != 2 || b[128] != 3 {
		t.Fatalf("encoding % x", b)
	}
	if got, err := ParseVersionedTable(b); err != nil || got.Hash() != tab.Hash() || got.Epoch != 3 || got.UpdateKey != tab.UpdateKey {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, mutate := range map[string]func([]byte){
		"update key without Merkle":     func(b []byte) { b[12] = FlagUpdateKey },
		"epoch without update key":      func(b []byte) { b[12] = FlagMerkle },
		"successor without predecessor": func(b []byte) { clear(b[128:160]) },
		"epoch 0 with a predecessor":    func(b []byte) { clear(b[28:32]) },
		"epoch past the bound":          func(b []byte) { b[29] = 1 },
		"unknown flag":                  func(b []byte) { b[12] |= 4 },
	} {
		c := bytes.Clone(b)
		mutate(c)
		if _, err := ParseVersionedTable(c); !errors.Is(err, ErrTable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseVersionedTable(b[:150]); err == nil {
		t.Error("a truncated updatable table was accepted")
	}
}

// TestMixedRollingUpdate: Gramine and SDK members in an updatable Merkle
// group, and a successor that keeps a Gramine member and an SDK member,
// replaces a Gramine member and drops one. Every member's real MRENCLAVE
// (replayed from its signed file) is what the others derive from its
// lineage proof, across the epochs.
func TestMixedRollingUpdate(t *testing.T) {
	_, _, c := gramineVectors(t)
	kb, _ := os.ReadFile("../testdata/gramine/key.pem")
	key, err := sgx.LoadSigningKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	base := string(gramineInput(t, "d6_defaults"))
	gram := func(name string) AnyMember {
		return AnyMember{Gramine: &GramineMember{Name: name, Manifest: []byte(strings.Replace(base, `ONLY = "defaults"`, `ONLY = "`+name+`"`, 1)), Key: key}}
	}
	sdk, _ := groupMembers(t, "g1")
	upd := testUpdateKey(t, 3)
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	g0, err := SignAnyGroup(t.Context(), []AnyMember{gram("a"), {SDK: &sdk[0]}, gram("b"), gram("c")}, c.Libpal,
		SignOptions{Date: date, Merkle: true, UpdateKey: upd.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if len(g0.Section) != PageSize || len(g0.Payload) != updatableTableSize || len(g0.LineageProofs) != 4 {
		t.Fatalf("epoch 0: section %d, payload %d bytes, %d proofs", len(g0.Section), len(g0.Payload), len(g0.LineageProofs))
	}
	// Keep a (Gramine) and the SDK member, replace b with b2, drop c.
	g1, err := SignAnyGroup(t.Context(), []AnyMember{gram("b2")}, c.Libpal, SignOptions{Date: date, Merkle: true,
		Successor: &Successor{Lineage: g0.Lineage, Key: upd, Keep: g0.LineageProofs[:2]}})
	if err != nil {
		t.Fatal(err)
	}
	// The successor has no SDK member signed now, but keeps the SDK
	// section size of the group.
	if g1.Members[0].Index != 2 || g1.Lineage.Head().SDKSectionSize != PageSize {
		t.Fatalf("epoch 1: new member at %d, head %+v", g1.Members[0].Index, g1.Lineage.Head())
	}
	// Each member's own view, from its signed file's table.
	view := func(sm SignedAnyMember, lp *LineageProof) *LineageVerifier {
		t.Helper()
		var d *TableDeriver
		if sm.Kind == KindSDK {
			s, err := sgxsdk.ParseSigned(sm.File)
			if err != nil {
				t.Fatal(err)
			}
			d, err = NewSectionDeriver(s.ELF.MageSection(), c.Libpal)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			m, err := gramine.ParseManifest(sm.File)
			if err != nil {
				t.Fatal(err)
			}
			d, _ = manifestDeriver(t, m, c.Libpal)
		}
		v, self, err := NewLineageVerifier(d, lp)
		if err != nil || self.MRENCLAVE != sm.MRENCLAVE {
			t.Fatalf("%s derives itself as %s (%v), measures %s", sm.Name, self.MRENCLAVE, err, sm.MRENCLAVE)
		}
		return v
	}
	members := []SignedAnyMember{g0.Members[0], g0.Members[1], g1.Members[0]}
	proofs := g1.LineageProofs
	for i, sm := range members {
		v := view(sm, proofs[i])
		for j, peer := range members {
			m, err := v.Verify(proofs[j])
			if err != nil || m.MRENCLAVE != peer.MRENCLAVE || m.Index != uint64(j) {
				t.Fatalf("%s verifies %s: %+v %v, want %s", sm.Name, peer.Name, m, err, peer.MRENCLAVE)
			}
		}
		// The dropped c and the replaced b are refused.
		for _, k := range []int{2, 3} {
			if _, err := v.Verify(g0.LineageProofs[k]); !errors.Is(err, ErrStale) {
				t.Fatalf("%s verifies the dropped %s: %v", sm.Name, g0.Members[k].Name, err)
			}
		}
	}
	man := g1.Manifest("mixed", nil)
	if man.Format != "merkle" || man.Epoch != 1 || man.UpdateKey == "" {
		t.Errorf("manifest %+v", man)
	}
}

// TestEntryMustHoldInMeasuredTable: a member is accepted only when the
// table it measured holds its entry too. Code added at epoch 1 but built
// over epoch 0's table is refused, so no build trusts an update key older
// than its own entry; and a fork signed by a retired key is refused by
// every member that knows the current epoch.
func TestEntryMustHoldInMeasuredTable(t *testing.T) {
	members := groupOf(t, 8)
	key0, key1 := testUpdateKey(t, 1), testUpdateKey(t, 2)
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	g0, err := SignGroup(t.Context(), members[:3], SignOptions{Date: date, Merkle: true, UpdateKey: key0.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	// Epoch 1 adds member 3 and rotates the update key to key1.
	g1, err := SignGroup(t.Context(), members[3:4], SignOptions{Date: date, Merkle: true, Successor: &Successor{
		Lineage: g0.Lineage, Key: key0, NextKey: key1.Public().(ed25519.PublicKey), Keep: g0.LineageProofs,
	}})
	if err != nil {
		t.Fatal(err)
	}
	added := g1.LineageProofs[3]
	oldD := deriverOf(t, g0.Members[0].File)

	// Member 3's code built over epoch 0's table: its entry is in epoch 1
	// only. Its host dresses it in the real lineage.
	early := &LineageProof{Measured: 0, Lineage: added.Lineage, Proof: added.Proof}
	earlyMR, err := oldD.finishMember(added.Proof.Kind, added.Proof.Index, added.Proof.Entry)
	if err != nil {
		t.Fatal(err)
	}
	// With its proof in epoch 1 standing in for a proof in epoch 0.
	early2 := *early
	early2.MeasuredProof = added.Proof
	if _, err := ParseLineageProof(early.Marshal()); !errors.Is(err, ErrProof) {
		t.Errorf("a lineage proof from an older measured table without its proof there parses: %v", err)
	}
	newV, _, err := NewLineageVerifier(deriverOf(t, g1.Members[0].File), added)
	if err != nil {
		t.Fatal(err)
	}
	oldV, _, err := NewLineageVerifier(oldD, g0.LineageProofs[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*LineageVerifier{"epoch-1 member": newV, "epoch-0 member": oldV} {
		for _, p := range []*LineageProof{early, &early2} {
			if m, err := v.Check(p); err == nil || !errors.Is(err, ErrProof) {
				t.Errorf("%s accepts member 3 built over epoch 0's table (%s): %+v %v", name, earlyMR, m, err)
			}
		}
		if _, _, err := NewLineageVerifier(oldD, early); err == nil {
			t.Errorf("member 3 built over epoch 0's table starts")
		}
	}

	// A fork of epoch 1, signed by the retired key0, adding member 4.
	fork, err := SignGroup(t.Context(), members[4:5], SignOptions{Date: date, Merkle: true, Successor: &Successor{
		Lineage: g0.Lineage, Key: key0, Keep: g0.LineageProofs[:1],
	}})
	if err != nil {
		t.Fatal(err)
	}
	forkMember := fork.LineageProofs[1]
	// Every member that knows epoch 1 refuses it: the new member, a kept
	// member given its epoch-1 proof, and an old member that learned epoch
	// 1 from a peer.
	kept, _, err := NewLineageVerifier(deriverOf(t, g0.Members[1].File), g1.LineageProofs[1])
	if err != nil {
		t.Fatal(err)
	}
	learned, _, err := NewLineageVerifier(deriverOf(t, g0.Members[2].File), g0.LineageProofs[2])
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := learned.Learn(reparse(t, g1.LineageProofs[3])); !ok || err != nil {
		t.Fatalf("learning epoch 1 from the new member: %t %v", ok, err)
	}
	for name, v := range map[string]*LineageVerifier{"epoch-1 member": newV, "kept member": kept, "learned member": learned} {
		for i, p := range fork.LineageProofs {
			if _, err := v.Check(reparse(t, p)); err == nil {
				t.Errorf("%s accepts fork member %d", name, i)
			}
		}
	}
	// The fork's member built over epoch 0's table is refused even by a
	// member that never heard of epoch 1; one built over the fork's own
	// table is what an unaware member cannot tell from a real successor
	// (docs/table-format.md: the trust an update key adds).
	forkEarly := &LineageProof{Measured: 0, Lineage: forkMember.Lineage, Proof: forkMember.Proof}
	if _, err := oldV.Check(forkEarly); !errors.Is(err, ErrProof) {
		t.Errorf("an epoch-0 member accepts the fork's member built over epoch 0's table: %v", err)
	}
	if _, err := oldV.Check(reparse(t, forkMember)); err != nil {
		t.Errorf("an unaware epoch-0 member refuses the fork's member built over the fork: %v (the documented limit changed: update docs/table-format.md)", err)
	}
}

// TestLearnOnlyFromVerifiedProofs: a peer whose membership proof fails
// teaches the verifier nothing; Restore brings back a kept lineage.
func TestLearnOnlyFromVerifiedProofs(t *testing.T) {
	r := signRolling(t)
	v, _, err := NewLineageVerifier(deriverOf(t, r.g0.Members[0].File), r.g0.LineageProofs[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := *r.g1.LineageProofs[3]
	bad.Proof = &MembershipProof{Index: bad.Proof.Index, Kind: bad.Proof.Kind, Entry: r.g0.LineageProofs[4].Proof.Entry, Path: bad.Proof.Path}
	if _, err := v.Verify(reparse(t, &bad)); err == nil {
		t.Fatal("a broken membership proof verifies")
	}
	if ok, err := v.Learn(reparse(t, &bad)); ok || err == nil {
		t.Fatalf("learned from a broken proof: %t %v", ok, err)
	}
	if v.Epoch() != 0 {
		t.Fatalf("a peer whose proof failed moved the verifier to epoch %d", v.Epoch())
	}
	// The member 4 of epoch 0 is still accepted.
	if _, err := v.Check(r.g0.LineageProofs[4]); err != nil {
		t.Fatal(err)
	}
	// A restarted member restores what it had learned.
	w, _, err := NewLineageVerifier(deriverOf(t, r.g0.Members[0].File), r.g0.LineageProofs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Restore(r.g1.Lineage); err != nil || w.Epoch() != 1 {
		t.Fatalf("restore: epoch %d, %v", w.Epoch(), err)
	}
	if _, err := w.Check(r.g0.LineageProofs[4]); !errors.Is(err, ErrStale) {
		t.Fatalf("after restoring epoch 1, the dropped member 4: %v", err)
	}
	// Restoring a lineage with a forged statement fails.
	forged := &Lineage{Tables: r.g1.Lineage.Tables, Statements: [][]byte{make([]byte, 64)}}
	x, _, _ := NewLineageVerifier(deriverOf(t, r.g0.Members[0].File), r.g0.LineageProofs[0])
	if err := x.Restore(forged); err == nil || x.Epoch() != 0 {
		t.Fatalf("restored a forged statement: %v", err)
	}
	if l := w.Lineage(); !bytes.Equal(l.Marshal(), r.g1.Lineage.Marshal()) {
		t.Fatal("the verifier's lineage is not the group's")
	}
}
