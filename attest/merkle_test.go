package attest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestMerkleGroupAttestation: members of a Merkle group attest each other
// with their membership proofs, each checking the peer's proof against
// the root in its own section; a member cannot start with another's proof,
// and a peer presenting another member's proof is refused. (Issue 14.)
func TestMerkleGroupAttestation(t *testing.T) {
	ms := signedMesh(t, 12, true)
	for i, a := range ms {
		if a.Index() != i || a.Group() != nil {
			t.Fatalf("member %d: index %d", i, a.Index())
		}
	}
	for i, a := range ms {
		for j, b := range ms {
			if i == j || (i+j)%3 != 0 { // a sample of the pairs
				continue
			}
			cc, sc, cerr, serr := pair(t, a, b)
			if cerr != nil || serr != nil {
				t.Fatalf("%d -> %d: %v / %v", i, j, cerr, serr)
			}
			if cc.Peer().Index != j || sc.Peer().Index != i {
				t.Errorf("%d -> %d: peers %d, %d", i, j, cc.Peer().Index, sc.Peer().Index)
			}
		}
	}
	// A member started with another member's proof is refused.
	cfg := ms[0].cfg
	cfg.Proof = ms[1].cfg.Proof
	if _, err := NewMember(cfg); !errors.Is(err, ErrNotMember) {
		t.Errorf("another member's proof at start: %v", err)
	}
	// A peer presenting another member's proof is refused.
	liar := *ms[2]
	liar.cfg.Proof = ms[3].cfg.Proof
	_, _, cerr, serr := pair(t, &liar, ms[4])
	refused(t, "another member's proof", cerr, serr, ErrNotInGroup)
	// A classic member and a Merkle member are not in each other's group.
	classic := signedMesh(t, 2, false)
	_, _, cerr, serr = pair(t, classic[0], ms[0])
	if cerr == nil || serr == nil {
		t.Error("a classic member and a Merkle member accepted each other")
	}
}

// BenchmarkMerkleHandshake: an attested handshake (local evidence) between
// members of a Merkle group, with their proofs, against the same between
// members of a classic group, in one run (issue 14: goal at most 1.1).
func BenchmarkMerkleHandshake(b *testing.B) {
	classic, merkle := signedMesh(b, 3, false), signedMesh(b, 3, true)
	for _, ms := range [][]*Member{classic, merkle} {
		for _, m := range ms {
			m.cfg.Evidence = Local
		}
	}
	handshakeRatio(b, [2]*Member{classic[0], classic[1]}, [2]*Member{merkle[0], merkle[1]}, "merkle/classic")
}

// handshakeRatio times handshakes between the pair a and between the pair
// x, alternately in one run, and reports x's time over a's as metric.
func handshakeRatio(b *testing.B, a, x [2]*Member, metric string) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	run := func(p [2]*Member) {
		loopbackPair(b, ln, func(c net.Conn) error { return p[1].Server(c).Handshake(context.Background()) },
			func(c net.Conn) error { return p[0].Client(c).Handshake(context.Background()) })
	}
	var ta, tx time.Duration
	for b.Loop() {
		t0 := time.Now()
		run(a)
		t1 := time.Now()
		run(x)
		ta, tx = ta+t1.Sub(t0), tx+time.Since(t1)
	}
	b.ReportMetric(float64(tx)/float64(ta), metric)
}
