package dcap_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
)

// forgedTCBInfo returns the collateral with its TCB Info's nextUpdate moved
// to 2099 (so its signature no longer verifies).
func forgedTCBInfo(t *testing.T) *dcap.Collateral {
	_, _, c := phala(t)
	c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"nextUpdate":"2025-07-19T10:56:11Z"`), []byte(`"nextUpdate":"2099-01-01T00:00:00Z"`), 1)
	if !bytes.Contains(c.TCBInfo, []byte("2099")) {
		t.Fatal("test data changed: no nextUpdate to forge")
	}
	return c
}

// TestCacheKeepsOnlyVerified (issue 18, hole 3): a forged TCB Info with a
// far nextUpdate, from the network or planted in the cache directory, is
// never kept nor served; TCB data is kept per update policy; plain HTTP
// and redirects to another origin are refused.
func TestCacheKeepsOnlyVerified(t *testing.T) {
	raw, q, genuine := phala(t)
	var mu sync.Mutex
	clock := inWindow
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	srv := dcaptest.NewServer(forgedTCBInfo(t), phalaFMSPC)
	defer srv.Close()
	dir := t.TempDir()
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Dir: dir, Time: now}
	defer cache.Close()

	// From the network: refused, not kept, and the failure is remembered.
	if _, err := cache.Collateral(t.Context(), q); !errors.Is(err, dcap.ErrFetch) || !errors.Is(err, dcap.ErrTCBInfo) {
		t.Fatalf("forged TCB Info: %v, want ErrFetch and ErrTCBInfo", err)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "tcb-*")); len(kept) != 0 {
		t.Fatalf("forged TCB Info written to the cache directory: %v", kept)
	}
	srv.SetCollateral(genuine)
	before := srv.Requests()["/tcb"]
	if _, err := cache.Collateral(t.Context(), q); err == nil || srv.Requests()["/tcb"] != before {
		t.Errorf("within RetryFailuresAfter: %v after %d new requests, want the remembered failure and none", err, srv.Requests()["/tcb"]-before)
	}
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	col, err := cache.Collateral(t.Context(), q)
	if err != nil {
		t.Fatalf("genuine TCB Info after the failure expired: %v", err)
	}
	if _, err := dcap.Verify(raw, col, dcap.Options{Time: now(), Accept: acceptCfg}); err != nil {
		t.Fatalf("the genuine collateral, once the forged one was refused: %v", err)
	}

	// Planted in the directory: a restart ignores it, deletes it, and
	// fetches the genuine one.
	forged := forgedTCBInfo(t)
	planted := filepath.Join(dir, "tcb-standard-"+phalaFMSPC+".json")
	b, _ := json.Marshal(map[string]any{"body": forged.TCBInfo, "sig": forged.TCBInfoSignature, "expires": "2099-01-01T00:00:00Z"})
	if err := os.WriteFile(planted, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before = srv.Requests()["/tcb"]
	restarted := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Dir: dir, Time: now}
	col, err = restarted.Collateral(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dcap.Verify(raw, col, dcap.Options{Time: now(), Accept: acceptCfg}); err != nil {
		t.Errorf("a restart over a planted TCB Info: %v", err)
	}
	if srv.Requests()["/tcb"] != before+1 {
		t.Errorf("the planted TCB Info was used instead of fetched (%d requests)", srv.Requests()["/tcb"]-before)
	}
	if kept, _ := os.ReadFile(planted); bytes.Contains(kept, []byte("2099")) {
		t.Error("the planted TCB Info is still in the directory")
	}

	// Early and standard TCB data are kept apart, in memory and on disk.
	early := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true, Update: dcap.UpdateEarly}, Dir: dir, Time: now}
	before = srv.Requests()["/tcb"]
	if _, err := early.Collateral(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	if srv.Requests()["/tcb"] != before+1 {
		t.Error("an early-update cache served the standard TCB Info")
	}

	// Plain HTTP needs InsecureHTTP; no request is made.
	before = srv.Requests()["/tcb"] + srv.Requests()["/rootcacrl"]
	if _, err := (&dcap.PCS{BaseURL: srv.BaseURL()}).Fetch(t.Context(), q); !errors.Is(err, dcap.ErrInsecureURL) {
		t.Errorf("http:// without InsecureHTTP: %v", err)
	}
	if srv.Requests()["/tcb"]+srv.Requests()["/rootcacrl"] != before {
		t.Error("a plain-HTTP request was made")
	}

	// A redirect to another origin is refused, with the default client
	// and with a Getter that follows every redirect.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redirect.Close()
	for name, g := range map[string]dcap.Getter{"default": nil, "own client": &http.Client{}} {
		pcs := &dcap.PCS{BaseURL: redirect.URL + dcaptest.Prefix, InsecureHTTP: true, Getter: g}
		if _, err := pcs.Fetch(t.Context(), q); !errors.Is(err, dcap.ErrInsecureURL) {
			t.Errorf("%s: a redirect to another host: %v", name, err)
		}
	}
}

// TestCacheBoundsFetches (issue 18, hole 4): however many verifications
// run, a failing PCS gets one request per piece, then none until
// RetryFailuresAfter has passed.
func TestCacheBoundsFetches(t *testing.T) {
	_, q, col := phala(t)
	srv := dcaptest.NewServer(col, phalaFMSPC)
	defer srv.Close()
	srv.Fail = func(r *http.Request) int {
		if r.URL.Path == dcaptest.Prefix+"/tcb" {
			time.Sleep(20 * time.Millisecond)
			return http.StatusInternalServerError
		}
		return 0
	}
	var mu sync.Mutex
	clock := inWindow
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true, Retries: -1}, Time: now, RetryFailuresAfter: 10 * time.Second}
	defer cache.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := cache.Collateral(t.Context(), q); err == nil {
				t.Error("collateral from a failing PCS")
			}
		})
	}
	wg.Wait()
	if n := srv.Requests()["/tcb"]; n != 1 {
		t.Errorf("50 concurrent verifications against a failing PCS: %d requests, want 1", n)
	}
	for range 20 {
		cache.Collateral(t.Context(), q)
	}
	if n := srv.Requests()["/tcb"]; n != 1 {
		t.Errorf("within RetryFailuresAfter: %d requests, want 1", n)
	}
	mu.Lock()
	clock = clock.Add(11 * time.Second)
	mu.Unlock()
	cache.Collateral(t.Context(), q)
	if n := srv.Requests()["/tcb"]; n != 2 {
		t.Errorf("after RetryFailuresAfter: %d requests, want 2", n)
	}
}
