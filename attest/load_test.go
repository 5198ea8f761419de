package attest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
	"github.com/magesgx/mage/sgx"
)

// The attested listener under hostile load (issue 18): a member's listener
// on 127.0.0.1 takes a burst of real members alone (the unloaded run),
// then the same burst beside as many hostile connections: slowloris peers
// that stall after TCP or after TLS, peers that send garbage, oversized
// messages or evidence of another group, and peers that drop
// mid-handshake. Every count and wait is bounded.

// loadServer is a member serving attested connections: each is attested,
// then answered with one byte and closed.
type loadServer struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup
}

func startLoadServer(tb testing.TB, m *Member) *loadServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &loadServer{addr: ln.Addr().String(), ln: ln}
	l := m.NewListener(ln)
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() {
				defer c.Close()
				if c.(*Conn).Handshake(context.Background()) == nil {
					c.Write([]byte{1})
				}
			})
		}
	})
	return s
}

// stop closes the listener and waits for every connection's goroutine.
func (s *loadServer) stop() {
	s.ln.Close()
	s.wg.Wait()
}

// realClient dials as a member, attests, reads the answer, and returns
// the time from dial to answer.
func realClient(m *Member, addr string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := m.Dial(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// hostileClient is one kind of hostile peer; it returns when it is done,
// having closed its connection (a stalling peer waits on stop).
type hostileClient func(addr string, stop <-chan struct{})

// rawTLS dials and completes a TLS handshake with the attested-TLS
// parameters, as a peer that then misbehaves.
func rawTLS(addr string) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	id, err := newIdentity("hostile")
	if err != nil {
		raw.Close()
		return nil, err
	}
	c := tls.Client(raw, tlsConfig(&id, roleClient))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func hostileKinds(other *Member) map[string]hostileClient {
	hello := append([]byte{protocolVersion, byte(Remote)}, make([]byte, sgx.TargetInfoSize)...)
	return map[string]hostileClient{
		// Slowloris: connect, then say nothing until stopped.
		"stall after TCP": func(addr string, stop <-chan struct{}) {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			<-stop
		},
		"stall after TLS": func(addr string, stop <-chan struct{}) {
			c, err := rawTLS(addr)
			if err != nil {
				return
			}
			defer c.Close()
			<-stop
		},
		"garbage before TLS": func(addr string, _ <-chan struct{}) {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			b := make([]byte, 4096)
			rand.Read(b)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(b)
			io.Copy(io.Discard, c)
		},
		"oversized message": func(addr string, _ <-chan struct{}) {
			c, err := rawTLS(addr)
			if err != nil {
				return
			}
			defer c.Close()
			var h [5]byte
			h[0] = msgHello
			binary.BigEndian.PutUint32(h[1:], 1<<30)
			c.Write(h[:])
			io.Copy(io.Discard, c)
		},
		"garbage after TLS": func(addr string, _ <-chan struct{}) {
			c, err := rawTLS(addr)
			if err != nil {
				return
			}
			defer c.Close()
			writeMsg(c, msgHello, hello)
			readMsg(c, msgHello)
			b := make([]byte, 8192)
			rand.Read(b)
			writeMsg(c, msgEvidence, b)
			writeMsg(c, msgProof, nil)
			io.Copy(io.Discard, c)
		},
		"another group's evidence": func(addr string, _ <-chan struct{}) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if c, err := other.Dial(ctx, "tcp", addr); err == nil {
				c.Close()
			}
		},
		"drop after hello": func(addr string, _ <-chan struct{}) {
			c, err := rawTLS(addr)
			if err != nil {
				return
			}
			writeMsg(c, msgHello, hello)
			c.Close()
		},
		"drop mid-TLS": func(addr string, _ <-chan struct{}) {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			// A ClientHello's first bytes, then gone.
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
			c.Close()
		},
	}
}

// loadResult is what one run measured.
type loadResult struct {
	latencies      []time.Duration // of the real members, sorted
	failures       int             // real members not served
	peakHeap       uint64          // bytes in use on the heap, at most
	peakGoroutines int
}

func (r loadResult) quantile(q float64) time.Duration {
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

// runLoad starts real real members and hostile hostile peers (spread over
// the hostile kinds) against addr at once, and waits for the real members;
// the stalling peers are released at the end.
func runLoad(tb testing.TB, addr string, clients []*Member, other *Member, real, hostile int) loadResult {
	var peak atomic.Uint64
	var peakG atomic.Int64
	sampled := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			if g := int64(runtime.NumGoroutine()); g > peakG.Load() {
				peakG.Store(g)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stop := make(chan struct{})
	kinds := hostileKinds(other)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range kinds {
			if !yield(k) {
				return
			}
		}
	})
	var hostiles sync.WaitGroup
	for i := range hostile {
		// Half of the hostile peers stall (slowloris), the rest misbehave.
		var k hostileClient
		if i%2 == 0 {
			k = kinds[[]string{"stall after TCP", "stall after TLS"}[i/2%2]]
		} else {
			k = kinds[names[i/2%len(names)]]
		}
		hostiles.Go(func() { k(addr, stop) })
	}
	lat := make([]time.Duration, real)
	errs := make([]error, real)
	var wg sync.WaitGroup
	for i := range real {
		wg.Go(func() { lat[i], errs[i] = realClient(clients[i%len(clients)], addr) })
	}
	wg.Wait()
	close(stop)
	hostiles.Wait()
	close(done)
	<-sampled
	res := loadResult{peakHeap: peak.Load(), peakGoroutines: int(peakG.Load())}
	for i, err := range errs {
		if err != nil {
			res.failures++
			if res.failures <= 3 {
				tb.Logf("real member %d: %v", i, err)
			}
			continue
		}
		res.latencies = append(res.latencies, lat[i])
	}
	slices.Sort(res.latencies)
	return res
}

// openFDs counts this process's open file descriptors.
func openFDs(tb testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skip("no /proc/self/fd to count descriptors:", err)
	}
	return len(ents)
}

// settle waits (bounded) until the goroutines and descriptors are back to
// what they were, and reports whether they are.
func settle(tb testing.TB, goroutines, fds int) (int, int, bool) {
	var g, f int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		g, f = runtime.NumGoroutine(), openFDs(tb)
		if g <= goroutines && f <= fds {
			return g, f, true
		}
	}
	return g, f, false
}

// TestListenerUnderHostileLoad: 1,000 concurrent connections (500 real
// members, 250 slowloris, 250 garbage, oversized, other-group or dropping
// peers) against one member's listener. The real members are served within
// twice the time the same burst of real members takes alone, no goroutine
// or descriptor outlives its connection, and the heap stays bounded.
// (Scaled down tenfold under the race detector.)
func TestListenerUnderHostileLoad(t *testing.T) {
	real, hostile := 500, 500
	if raceEnabled || testing.Short() {
		real, hostile = 50, 50
	}
	f := newFixture(t)
	server := f.member(t, read(t, "signed/g1_v1.signed.so"), Remote, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })
	clients := []*Member{f.g1(t, 0, Remote), f.g1(t, 2, Remote)}
	other := f.member(t, read(t, "signed/g2_v3.signed.so"), Remote, nil)
	// Warm up (TLS session state, the quote verifier's chain cache).
	if _, err := realClient(clients[0], startAndStop(t, server)); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), openFDs(t)

	srv := startLoadServer(t, server)
	alone := runLoad(t, srv.addr, clients, other, real, 0)
	loaded := runLoad(t, srv.addr, clients, other, real, hostile)
	srv.stop()

	if alone.failures != 0 || loaded.failures != 0 {
		t.Fatalf("real members not served: %d alone, %d under load", alone.failures, loaded.failures)
	}
	t.Logf("%d real members alone: p50 %v, p90 %v, max %v", real, alone.quantile(0.5), alone.quantile(0.9), alone.quantile(1))
	t.Logf("%d real + %d hostile: p50 %v, p90 %v, max %v; peak heap %.1f MiB, peak goroutines %d",
		real, hostile, loaded.quantile(0.5), loaded.quantile(0.9), loaded.quantile(1), float64(loaded.peakHeap)/(1<<20), loaded.peakGoroutines)
	// The real members arrive in one burst, so each one's time is mostly
	// its place in the queue: the burst under load is compared with the
	// same burst alone, at the median, the 90th percentile and the slowest.
	for _, q := range []float64{0.5, 0.9, 1} {
		if l, a := loaded.quantile(q), alone.quantile(q); l > 2*a {
			t.Errorf("real members at quantile %.1f: %v under load, over twice the %v alone", q, l, a)
		}
	}
	if limit := uint64(256 << 20); loaded.peakHeap > limit {
		t.Errorf("peak heap %d MiB, over %d MiB", loaded.peakHeap>>20, limit>>20)
	}
	if g, fd, ok := settle(t, g0, fd0); !ok {
		t.Errorf("after the load: %d goroutines (was %d), %d descriptors (was %d)", g, g0, fd, fd0)
	}
}

// startAndStop serves one connection for a warm-up and returns the
// address it served on (the server is stopped once that connection ends).
func startAndStop(tb testing.TB, m *Member) string {
	s := startLoadServer(tb, m)
	tb.Cleanup(s.stop)
	return s.addr
}

// TestCollateralServerFaults: a member whose collateral server hangs or
// answers 500 still ends every handshake that needs collateral within its
// handshake timeout, makes a bounded number of requests, and leaks
// nothing. The peers send the real Intel quote (collateral is fetched only
// for quotes that verify).
func TestCollateralServerFaults(t *testing.T) {
	quote, col, at := realQuote(t)
	n := 100
	if raceEnabled || testing.Short() {
		n = 20
	}
	for _, fault := range []string{"hang", "500"} {
		t.Run(fault, func(t *testing.T) {
			pcs := dcaptest.NewServer(col, "00A067110000")
			release := make(chan struct{})
			pcs.Fail = func(r *http.Request) int {
				if fault == "hang" {
					select {
					case <-r.Context().Done():
					case <-release:
					}
					return http.StatusServiceUnavailable
				}
				return http.StatusInternalServerError
			}
			var closeOnce sync.Once
			shutdown := func() {
				closeOnce.Do(func() {
					close(release)
					pcs.Close()
					// The collateral client's idle keep-alive connections
					// belong to the transport's pool, not to a handshake.
					http.DefaultTransport.(*http.Transport).CloseIdleConnections()
				})
			}
			defer shutdown()
			// Requests in flight are counted where the member sends them:
			// the server may notice a cancelled request only after the
			// member has moved on to the next one.
			getter := &countingGetter{Getter: &http.Client{}}
			cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: pcs.BaseURL(), InsecureHTTP: true, Backoff: 10 * time.Millisecond, Getter: getter}, Time: at}
			defer cache.Close()
			f := newFixture(t)
			m := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
				c.Collateral, c.Now, c.HandshakeTimeout, c.InsecureSimulationRoot = cache, at, 500*time.Millisecond, nil
			})
			runtime.GC()
			g0, fd0 := runtime.NumGoroutine(), openFDs(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := m.NewListener(ln)
			var ended atomic.Int32
			var slowest atomic.Int64
			var served sync.WaitGroup
			served.Go(func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					served.Go(func() {
						defer c.Close()
						start := time.Now()
						if c.(*Conn).Handshake(context.Background()) == nil {
							t.Error("a handshake with a replayed quote succeeded")
						}
						if d := int64(time.Since(start)); d > slowest.Load() {
							slowest.Store(d)
						}
						ended.Add(1)
					})
				}
			})
			var peers sync.WaitGroup
			for range n {
				peers.Go(func() {
					c, err := rawTLS(ln.Addr().String())
					if err != nil {
						return
					}
					defer c.Close()
					writeMsg(c, msgHello, append([]byte{protocolVersion, byte(Remote)}, make([]byte, sgx.TargetInfoSize)...))
					readMsg(c, msgHello)
					writeMsg(c, msgEvidence, quote)
					writeMsg(c, msgProof, nil)
					io.Copy(io.Discard, c)
				})
			}
			peers.Wait()
			ln.Close()
			served.Wait()
			reqs := 0
			for _, k := range pcs.Requests() {
				reqs += k
			}
			t.Logf("%d handshakes needing collateral, server %s: slowest ended after %v; %d requests to the collateral server, at most %d at once",
				ended.Load(), fault, time.Duration(slowest.Load()).Round(time.Millisecond), reqs, getter.max.Load())
			if int(ended.Load()) != n {
				t.Errorf("%d of %d handshakes ended", ended.Load(), n)
			}
			if d := time.Duration(slowest.Load()); d > 2*time.Second {
				t.Errorf("a handshake took %v with a 500ms timeout", d)
			}
			// One request at a time, whatever the number of handshakes; a
			// server answering 500 gets one fetch (with its retries), then
			// none until RetryFailuresAfter; a hanging one, one request per
			// handshake timeout at most.
			if getter.max.Load() > 1 {
				t.Errorf("%d requests in flight at once to the collateral server", getter.max.Load())
			}
			if fault == "500" && reqs > 4 {
				t.Errorf("%d requests to a failing collateral server for %d handshakes, want one fetch and its 3 retries", reqs, n)
			}
			shutdown()
			if g, fd, ok := settle(t, g0, fd0); !ok {
				t.Errorf("after the load: %d goroutines (was %d), %d descriptors (was %d)", g, g0, fd, fd0)
			}
		})
	}
}

// countingGetter counts the requests in flight through it, from the call
// to Do until the response body is closed or Do fails.
type countingGetter struct {
	dcap.Getter
	inflight, max atomic.Int32
}

func (g *countingGetter) Do(r *http.Request) (*http.Response, error) {
	n := g.inflight.Add(1)
	for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
	}
	resp, err := g.Getter.Do(r)
	if err != nil {
		g.inflight.Add(-1)
		return nil, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, done: func() { g.inflight.Add(-1) }}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *countedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

// BenchmarkListenerUnderHostileLoad reports how much slower a burst of
// real members is served beside as many hostile connections (ratio of the
// slowest real member's time, loaded/alone, and of the median).
func BenchmarkListenerUnderHostileLoad(b *testing.B) {
	f := newFixture(b)
	server := f.member(b, read(b, "signed/g1_v1.signed.so"), Remote, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })
	clients := []*Member{f.g1(b, 0, Remote), f.g1(b, 2, Remote)}
	other := f.member(b, read(b, "signed/g2_v3.signed.so"), Remote, nil)
	srv := startLoadServer(b, server)
	defer srv.stop()
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprintf("real=%d,hostile=%d", n, n), func(b *testing.B) {
			var maxRatio, p50Ratio float64
			for b.Loop() {
				alone := runLoad(b, srv.addr, clients, other, n, 0)
				loaded := runLoad(b, srv.addr, clients, other, n, n)
				if alone.failures+loaded.failures != 0 {
					b.Fatal("real members not served")
				}
				maxRatio = max(maxRatio, float64(loaded.quantile(1))/float64(alone.quantile(1)))
				p50Ratio = max(p50Ratio, float64(loaded.quantile(0.5))/float64(alone.quantile(0.5)))
				b.ReportMetric(float64(loaded.peakHeap)/(1<<20), "peak-heap-MiB")
			}
			b.ReportMetric(maxRatio, "max-loaded/alone")
			b.ReportMetric(p50Ratio, "p50-loaded/alone")
		})
	}
}
