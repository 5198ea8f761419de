//go:build cgo

package libmage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// threeEpochs is an updatable mixed group over three epochs: epoch 0 has
// SDK members a, b and Gramine members c, d; epoch 1 keeps a and c, adds
// SDK member e and rotates the update key; epoch 2 keeps a and e and adds
// Gramine member f. A fork of epoch 1, signed with epoch 0's key after it
// was rotated away, adds a Gramine member.
type threeEpochs struct {
	g      [3]epoch
	fork   epoch
	palRaw []byte
	pal    *gramine.Libpal
}

// epoch is what signing an epoch gives, whatever signed it.
type epoch struct {
	Lineage       *mage.Lineage
	LineageProofs []*mage.LineageProof
	Proofs        []*mage.MembershipProof
	Members       []member
}

type member struct {
	Name string
	Kind mage.Kind
	File []byte
}

func signThreeEpochs(t testing.TB) *threeEpochs {
	ms, palRaw, pal := mixedMembers(t, "d5_edmm_t1_64M_nodebug")
	cfg, _ := sgxsdk.ParseConfig(read(t, "configs/cA_sample_default.config.xml"))
	key, _ := sgx.LoadSigningKey(read(t, "keys/g1_k2.pem"))
	e := mage.AnyMember{SDK: &mage.Member{Name: "e", ELF: read(t, "enclaves/g1_m2.so"), Config: cfg, Key: key}}
	gram := func(name string) mage.AnyMember {
		g := *ms[2].Gramine
		g.Name, g.Manifest = name, []byte(string(g.Manifest)+"\n[loader.env]\nMEMBER = \""+name+"\"\n")
		return mage.AnyMember{Gramine: &g}
	}
	k0 := ed25519.NewKeyFromSeed(make([]byte, 32))
	k1 := ed25519.NewKeyFromSeed(append(make([]byte, 31), 1))
	date := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	sign := func(members []mage.AnyMember, o mage.SignOptions) epoch {
		o.Date, o.Merkle = date, true
		var sdk []mage.Member
		for _, m := range members {
			if m.SDK != nil {
				sdk = append(sdk, *m.SDK)
			}
		}
		if len(sdk) == len(members) { // SDK members only: SignGroup
			g, err := mage.SignGroup(context.Background(), sdk, o)
			if err != nil {
				t.Fatal(err)
			}
			ep := epoch{Lineage: g.Lineage, LineageProofs: g.LineageProofs, Proofs: g.Proofs}
			for _, sm := range g.Members {
				ep.Members = append(ep.Members, member{sm.Name, mage.KindSDK, sm.File})
			}
			return ep
		}
		g, err := mage.SignAnyGroup(context.Background(), members, pal, o)
		if err != nil {
			t.Fatal(err)
		}
		ep := epoch{Lineage: g.Lineage, LineageProofs: g.LineageProofs, Proofs: g.Proofs}
		for _, sm := range g.Members {
			ep.Members = append(ep.Members, member{sm.Name, sm.Kind, sm.File})
		}
		return ep
	}
	x := &threeEpochs{palRaw: palRaw, pal: pal}
	x.g[0] = sign(ms, mage.SignOptions{UpdateKey: k0.Public().(ed25519.PublicKey)})
	x.g[1] = sign([]mage.AnyMember{e}, mage.SignOptions{Successor: &mage.Successor{Lineage: x.g[0].Lineage, Key: k0,
		NextKey: k1.Public().(ed25519.PublicKey), Keep: []*mage.LineageProof{x.g[0].LineageProofs[0], x.g[0].LineageProofs[2]}}})
	x.g[2] = sign([]mage.AnyMember{gram("f")}, mage.SignOptions{Successor: &mage.Successor{Lineage: x.g[1].Lineage, Key: k1,
		Keep: []*mage.LineageProof{x.g[1].LineageProofs[0], x.g[1].LineageProofs[2]}}})
	x.fork = sign([]mage.AnyMember{gram("forked")}, mage.SignOptions{Successor: &mage.Successor{Lineage: x.g[0].Lineage, Key: k0,
		Keep: []*mage.LineageProof{x.g[0].LineageProofs[1]}}})
	return x
}

// sectionOf returns the .sgx_mage section of a signed SDK member.
func sectionOf(t testing.TB, file []byte) []byte {
	s, err := sgxsdk.ParseSigned(file)
	if err != nil {
		t.Fatal(err)
	}
	return s.ELF.MageSection()
}

// TestLineagesLikeGo: every SDK member's view, started from each lineage
// proof it may be given, derives itself as Go's does, and decides every
// lineage proof of the three epochs (and hostile ones) as Go's
// LineageVerifier does: the same MRENCLAVE, index and epochs, or a refusal;
// learning moves both the same way.
func TestLineagesLikeGo(t *testing.T) {
	x := signThreeEpochs(t)
	cpal := cLibpal(t, x.palRaw)
	var proofs [][]byte
	for _, g := range append(x.g[:], x.fork) {
		_ = g.Members
		for _, p := range g.LineageProofs {
			proofs = append(proofs, p.Marshal())
		}
	}
	// Hostile: member e of epoch 1 dressed as built over epoch 0's table
	// (its proof in epoch 1 standing in for one in epoch 0), and a proof
	// of version 01.
	early := *x.g[1].LineageProofs[2]
	early.Measured, early.MeasuredProof = 0, early.Proof
	v1 := x.g[0].LineageProofs[0].Marshal()
	v1[7] = 1
	proofs = append(proofs, early.Marshal(), v1)

	type view struct {
		name string
		file []byte
		own  *mage.LineageProof
	}
	var views []view
	for e, g := range x.g {
		for i, sm := range g.Members {
			if sm.Kind != mage.KindSDK {
				continue
			}
			for later := e; later < 3; later++ {
				// Its own proof at each epoch that keeps it.
				for _, lp := range x.g[later].LineageProofs {
					if lp.Measured == uint32(e) && lp.Proof.Entry == g.Proofs[i].Entry {
						views = append(views, view{sm.Name, sm.File, lp})
					}
				}
			}
		}
	}
	if len(views) < 5 {
		t.Fatalf("only %d views", len(views))
	}
	for _, vw := range views {
		sec := sectionOf(t, vw.file)
		d, err := mage.NewSectionDeriver(sec, x.pal)
		if err != nil {
			t.Fatal(err)
		}
		gv, gself, gerr := mage.NewLineageVerifier(d, vw.own)
		cv, cself, cidx, st := NewLineage(sec, cpal, vw.own.Marshal())
		defer cv.Free()
		if gerr != nil || st != OK || cself != gself.MRENCLAVE || cidx != gself.Index || cv.Known() != gv.Epoch()+1 {
			t.Fatalf("%s (proof at epoch %d): Go %s %d (%v), C %x %d (%v), known %d/%d", vw.name, len(vw.own.Lineage.Tables)-1,
				gself.MRENCLAVE, gself.Index, gerr, cself, cidx, st, cv.Known(), gv.Epoch()+1)
		}
		compare := func(stage string) {
			accepted := 0
			defer func() {
				t.Logf("%s (own proof at epoch %d) %s: %d of %d proofs accepted by both", vw.name, len(vw.own.Lineage.Tables)-1, stage, accepted, len(proofs))
			}()
			for j, b := range proofs {
				gp, perr := mage.ParseLineageProof(b)
				var gm mage.LineageMember
				gerr := perr
				if perr == nil {
					gm, gerr = gv.Check(gp)
				}
				mr, idx, ep, ms, st := cv.Check(b)
				switch {
				case gerr == nil && (st != OK || mr != gm.MRENCLAVE || idx != gm.Index || ep != gm.Epoch || ms != gm.Measured):
					t.Errorf("%s %s, proof %d: Go accepts %s (index %d, epochs %d/%d), C %x %d %d/%d (%v)", vw.name, stage, j, gm.MRENCLAVE, gm.Index, gm.Epoch, gm.Measured, mr, idx, ep, ms, st)
				case gerr != nil && st == OK:
					t.Errorf("%s %s, proof %d: Go refuses (%v), C accepts %x", vw.name, stage, j, gerr, mr)
				case errors.Is(gerr, mage.ErrStale) != (st == ErrStale):
					t.Errorf("%s %s, proof %d: Go %v, C %v", vw.name, stage, j, gerr, st)
				case gerr == nil:
					accepted++
				}
			}
		}
		compare("at start")
		// Learning from the newest member moves both views to epoch 2.
		newest := x.g[2].LineageProofs[2]
		gl, gerr := gv.Learn(newest)
		cl, st := cv.Learn(newest.Marshal())
		if gl != cl || (gerr == nil) != (st == OK) || cv.Known() != gv.Epoch()+1 {
			t.Fatalf("%s: learning: Go %t %v, C %t %v", vw.name, gl, gerr, cl, st)
		}
		compare("after learning epoch 2")
	}
}

// FuzzLineage compares mage_lineage_check with Go's LineageVerifier.Check
// on any lineage proof, from the view of member a at epoch 0 (which checks
// newer tables by their statements) and of member e at epoch 1, and
// mage_lineage_init (with its learning) with NewLineageVerifier when the
// input is given as the member's own proof.
func FuzzLineage(f *testing.F) {
	x := signThreeEpochs(f)
	cpal := cLibpal(f, x.palRaw)
	type pair struct {
		g   *mage.LineageVerifier
		c   *Lineage
		sec []byte
		d   *mage.TableDeriver
	}
	var views []pair
	for _, own := range []struct {
		file []byte
		lp   *mage.LineageProof
	}{{x.g[0].Members[0].File, x.g[0].LineageProofs[0]}, {x.g[1].Members[0].File, x.g[1].LineageProofs[2]}} {
		sec := sectionOf(f, own.file)
		d, err := mage.NewSectionDeriver(sec, x.pal)
		if err != nil {
			f.Fatal(err)
		}
		gv, _, err := mage.NewLineageVerifier(d, own.lp)
		if err != nil {
			f.Fatal(err)
		}
		cv, _, _, st := NewLineage(sec, cpal, own.lp.Marshal())
		if st != OK {
			f.Fatal(st)
		}
		f.Cleanup(cv.Free)
		views = append(views, pair{gv, cv, sec, d})
	}
	for _, g := range append(x.g[:], x.fork) {
		for _, p := range g.LineageProofs {
			f.Add(p.Marshal())
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, v := range views {
			gp, gerr := mage.ParseLineageProof(b)
			var gm mage.LineageMember
			if gerr == nil {
				gm, gerr = v.g.Check(gp)
			}
			mr, idx, ep, ms, st := v.c.Check(b)
			switch {
			case gerr == nil && (st != OK || mr != gm.MRENCLAVE || idx != gm.Index || ep != gm.Epoch || ms != gm.Measured):
				t.Fatalf("view %d: Go accepts %s, C %x (%v)", i, gm.MRENCLAVE, mr, st)
			case gerr != nil && st == OK:
				t.Fatalf("view %d: Go refuses (%v), C accepts %x", i, gerr, mr)
			}
			// The same bytes as this member's own proof: a view started
			// from them (mage_lineage_init, and its learning).
			var gself mage.LineageMember
			gerr = nil
			if gp, gerr = mage.ParseLineageProof(b); gerr == nil {
				_, gself, gerr = mage.NewLineageVerifier(v.d, gp)
			}
			cv, cself, _, st := NewLineage(v.sec, cpal, b)
			cv.Free()
			if (gerr == nil) != (st == OK) || (gerr == nil && cself != gself.MRENCLAVE) {
				t.Fatalf("view %d started from the input: Go %s (%v), C %x (%v)", i, gself.MRENCLAVE, gerr, cself, st)
			}
		}
	})
}

// FuzzLibpal runs mage_libpal_parse on any bytes (memory safety under the
// sanitizers) and, where Go's parser accepts the same file, checks that
// both read the same entry point, span and segments.
func FuzzLibpal(f *testing.F) {
	f.Add(read(f, "../gramine/fakepal.so"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, st := ParseLibpal(b)
		g, err := gramine.ParseLibpal(b)
		if st != OK {
			return
		}
		defer p.Free()
		if err != nil {
			return // Go's debug/elf is stricter about the rest of the file; the table's SHA-256 decides anyway
		}
		if uint64(p.c.entry) != g.Entry || uint64(p.c.span) != g.Span || int(p.c.nseg) != len(g.Segments) {
			t.Fatalf("C entry %#x span %#x %d segments; Go %#x %#x %d", p.c.entry, p.c.span, p.c.nseg, g.Entry, g.Span, len(g.Segments))
		}
	})
}
