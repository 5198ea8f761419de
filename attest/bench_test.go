package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
	"github.com/magesgx/mage/sim"
)

// loopbackPair runs one handshake pair over a TCP loopback connection.
func loopbackPair(b *testing.B, ln net.Listener, server func(net.Conn) error, client func(net.Conn) error) {
	var wg sync.WaitGroup
	var serr error
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		defer c.Close()
		serr = server(c)
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cerr := client(c)
	c.Close()
	wg.Wait()
	if cerr != nil || serr != nil {
		b.Fatal(cerr, serr)
	}
}

// BenchmarkHandshake compares an attested handshake (TLS 1.3 plus the
// evidence exchange, remote or local) with plain mutual TLS 1.3 using the
// same key type (ECDSA P-256), on loopback, in one run. The ratio of the
// ns/op figures is the cost of attestation.
func BenchmarkHandshake(b *testing.B) {
	f := newFixture(b)
	a, s := f.g1(b, 0, Remote), f.g1(b, 1, 0)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	b.Run("plain-mTLS", func(b *testing.B) {
		scfg, ccfg := tlsConfig(&s.id, roleServer), tlsConfig(&a.id, roleClient)
		for b.Loop() {
			loopbackPair(b, ln, func(c net.Conn) error { return tls.Server(c, scfg).Handshake() },
				func(c net.Conn) error { return tls.Client(c, ccfg).Handshake() })
		}
	})
	for _, kind := range []Kind{Remote, Local} {
		cl := f.g1(b, 0, kind)
		b.Run("attested-"+kind.String(), func(b *testing.B) {
			for b.Loop() {
				loopbackPair(b, ln, func(c net.Conn) error { return s.Server(c).Handshake(context.Background()) },
					func(c net.Conn) error { return cl.Client(c).Handshake(context.Background()) })
			}
		})
	}
}

// meshGroup signs a group of n members (g1's enclaves with distinct heap
// sizes) and loads them on one simulated platform.
func meshGroup(b testing.TB, n int) []*Member { return signedMesh(b, n, false) }

// signedMesh signs a group of n members, classic or Merkle, and loads them
// on one simulated platform.
func signedMesh(b testing.TB, n int, merkle bool) []*Member {
	p, err := sim.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ms := meshInputs(b, n)
	g, err := mage.SignGroup(context.Background(), ms, mage.SignOptions{Date: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), Merkle: merkle})
	if err != nil {
		b.Fatal(err)
	}
	var out []*Member
	for i, sm := range g.Members {
		e, err := p.Load(context.Background(), sm.File, nil)
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Backend: NewSimBackend(e), InsecureSimulationRoot: p.RootCertificate()}
		if merkle {
			cfg.Proof = g.Proofs[i]
		}
		m, err := NewMember(cfg)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// meshInputs returns n distinct members to sign: the three sample
// enclaves, each with a heap size of its own.
func meshInputs(tb testing.TB, n int) []mage.Member {
	key, _ := sgx.LoadSigningKey(read(tb, "keys/g1_k0.pem"))
	elfs := [][]byte{read(tb, "enclaves/g1_m0.so"), read(tb, "enclaves/g1_m1.so"), read(tb, "enclaves/g1_m2.so")}
	var ms []mage.Member
	for i := range n {
		cfg, err := sgxsdk.ParseConfig(fmt.Appendf(nil, "<EnclaveConfiguration><HeapMaxSize>%#x</HeapMaxSize></EnclaveConfiguration>", 0x100000+(i/3)*0x1000))
		if err != nil {
			tb.Fatal(err)
		}
		ms = append(ms, mage.Member{ELF: elfs[i%3], Config: cfg, Key: key})
	}
	return ms
}

// BenchmarkMesh times a full mesh: every pair of N members attests each
// other once (N(N-1)/2 mutual handshakes over loopback, both cores busy).
func BenchmarkMesh(b *testing.B) {
	for _, n := range []int{3, 10, 85} {
		members := meshGroup(b, n)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			lns := make([]*Listener, n)
			for i, m := range members {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				lns[i] = m.NewListener(ln)
				defer lns[i].Close()
				go func() {
					for {
						c, err := lns[i].Accept()
						if err != nil {
							return
						}
						go func() {
							c.(*Conn).Handshake(context.Background())
							c.Close()
						}()
					}
				}()
			}
			for b.Loop() {
				var wg sync.WaitGroup
				sem := make(chan struct{}, 8)
				for i := range n {
					for j := i + 1; j < n; j++ {
						sem <- struct{}{}
						wg.Go(func() {
							defer func() { <-sem }()
							c, err := members[i].Dial(context.Background(), "tcp", lns[j].Addr().String())
							if err != nil {
								b.Error(err)
								return
							}
							c.Close()
						})
					}
				}
				wg.Wait()
			}
			b.ReportMetric(float64(n*(n-1)/2), "pairs")
		})
	}
}

// BenchmarkLineageHandshake: an attested handshake (local evidence)
// between an epoch-0 member and an epoch-1 member of an updatable group,
// with their lineage proofs, against the same between members of a
// classic group, in one run (issue 14: goal at most 1.1).
func BenchmarkLineageHandshake(b *testing.B) {
	classic := signedMesh(b, 3, false)
	p, err := sim.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	key, _ := sgx.LoadSigningKey(read(b, "keys/g1_k0.pem"))
	ms := []mage.Member{{ELF: read(b, "enclaves/g1_m0.so"), Key: key}, {ELF: read(b, "enclaves/g1_m1.so"), Key: key}, {ELF: read(b, "enclaves/g1_m2.so"), Key: key}}
	upd := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	date := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	g0, err := mage.SignGroup(b.Context(), ms[:2], mage.SignOptions{Date: date, Merkle: true, UpdateKey: upd.Public().(ed25519.PublicKey)})
	if err != nil {
		b.Fatal(err)
	}
	g1, err := mage.SignGroup(b.Context(), ms[2:], mage.SignOptions{Date: date, Merkle: true, Successor: &mage.Successor{Lineage: g0.Lineage, Key: upd, Keep: g0.LineageProofs}})
	if err != nil {
		b.Fatal(err)
	}
	old := simMember(b, p, g0.Members[0].File, Config{Lineage: g1.LineageProofs[0], Evidence: Local})
	updated := simMember(b, p, g1.Members[0].File, Config{Lineage: g1.LineageProofs[2], Evidence: Local})
	for _, m := range classic {
		m.cfg.Evidence = Local
	}
	handshakeRatio(b, [2]*Member{classic[0], classic[1]}, [2]*Member{old, updated}, "lineage/classic")
}
