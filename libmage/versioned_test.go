//go:build cgo

package libmage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// mixedMembers returns two SDK enclaves and two Gramine enclaves (the same
// stock manifest, one with a value changed) to sign together, and the
// libpal the Gramine ones run.
func mixedMembers(t testing.TB) ([]mage.AnyMember, []byte, *gramine.Libpal) {
	palRaw := read(t, "../gramine/fakepal.so")
	pal, err := gramine.ParseLibpal(palRaw)
	if err != nil {
		t.Fatal(err)
	}
	gkey, err := sgx.LoadSigningKey(read(t, "../gramine/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	base := string(read(t, "../gramine/single/d6_defaults/d6_defaults.manifest.sgx"))
	variant := strings.Replace(base, `ONLY = "defaults"`, `ONLY = "variant"`, 1)
	var ms []mage.AnyMember
	for i, e := range []struct{ elf, cfg, key string }{{"g1_m0", "cG1_group_a", "g1_k0"}, {"g1_m1", "cG1_group_b", "g1_k1"}} {
		cfg, err := sgxsdk.ParseConfig(read(t, "configs/"+e.cfg+".config.xml"))
		if err != nil {
			t.Fatal(err)
		}
		key, err := sgx.LoadSigningKey(read(t, "keys/"+e.key+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, mage.AnyMember{SDK: &mage.Member{Name: "sdk" + string(rune('a'+i)), ELF: read(t, "enclaves/"+e.elf+".so"), Config: cfg, Key: key}})
	}
	for i, m := range []string{base, variant} {
		ms = append(ms, mage.AnyMember{Gramine: &mage.GramineMember{Name: "gram" + string(rune('a'+i)), Manifest: []byte(m), Key: gkey}})
	}
	return ms, palRaw, pal
}

// TestVersionedTables: on a mixed group's versioned table and on its
// Merkle table, the C library derives every member (SDK and Gramine, the
// latter by replaying Gramine's suffix) exactly as the signer measured it;
// without the libpal it says so; with another libpal it refuses.
func TestVersionedTables(t *testing.T) {
	ms, palRaw, pal := mixedMembers(t)
	cpal, st := ParseLibpal(palRaw)
	if st != OK {
		t.Fatalf("mage_libpal_parse: %v", st)
	}
	defer cpal.Free()
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for _, merkle := range []bool{false, true} {
		g, err := mage.SignAnyGroup(context.Background(), ms, pal, mage.SignOptions{Date: date, Merkle: merkle})
		if err != nil {
			t.Fatal(err)
		}
		sec := g.Section
		if n, st := Count(sec); st != OK || n != uint64(len(ms)) {
			t.Fatalf("merkle %t: mage_count %d %v", merkle, n, st)
		}
		for i, sm := range g.Members {
			var got [32]byte
			var st Status
			if merkle {
				var idx uint64
				got, idx, st = MerkleDerive(sec, cpal, g.Proofs[i].Marshal())
				if idx != uint64(i) {
					t.Errorf("merkle: proof %d gives index %d", i, idx)
				}
				if _, _, st := MerkleDerive(sec, nil, g.Proofs[i].Marshal()); (sm.Kind == mage.KindGramine) != (st == ErrPal) {
					t.Errorf("merkle: member %d (%s) without the libpal: %v", i, sm.Kind, st)
				}
			} else {
				got, st = DerivePal(sec, cpal, uint64(i))
				if _, st := Derive(sec, uint64(i)); (sm.Kind == mage.KindGramine) != (st == ErrPal) {
					t.Errorf("member %d (%s) without the libpal: %v", i, sm.Kind, st)
				}
				if FindPal(sec, cpal, sm.MRENCLAVE) != int64(i) {
					t.Errorf("mage_find_pal of member %d", i)
				}
			}
			if st != OK || got != sm.MRENCLAVE {
				t.Errorf("merkle %t: member %d (%s): C derives %x (%v), the signer measured %s", merkle, i, sm.Kind, got, st, sm.MRENCLAVE)
			}
		}
		if merkle {
			// A proof for another member's entry, a path of the wrong
			// length, and a classic call on a Merkle table.
			p := *g.Proofs[1]
			p.Entry = g.Proofs[2].Entry
			if _, _, st := MerkleDerive(sec, cpal, p.Marshal()); st != ErrProof {
				t.Errorf("a proof with another entry: %v", st)
			}
			b := g.Proofs[0].Marshal()
			if _, _, st := MerkleDerive(sec, cpal, b[:len(b)-1]); st != ErrProof {
				t.Errorf("a truncated proof: %v", st)
			}
			if _, st := DerivePal(sec, cpal, 0); st != ErrMerkle {
				t.Errorf("mage_derive on a Merkle table: %v", st)
			}
		} else {
			// Another libpal: refused by its hash.
			other := append([]byte(nil), palRaw...)
			other[len(other)-1] ^= 1
			if op, st := ParseLibpal(other); st == OK {
				if _, st := DerivePal(sec, op, 2); st != ErrPalMM {
					t.Errorf("another libpal: %v", st)
				}
				op.Free()
			}
			if self, st := TrustPal(sec, cpal, g.Members[3].MRENCLAVE); st != OK || self != 3 {
				t.Errorf("mage_trust_pal: %d %v", self, st)
			}
			if _, st := Trust(sec, g.Members[3].MRENCLAVE); st != ErrPal {
				t.Errorf("mage_trust without the libpal, pinning a Gramine member: %v", st)
			}
		}
	}
}
