package dcap_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
)

// The real Phala quote and its recorded Intel collateral, served as PCS
// serves it. The collateral window is 2025-06-19T10:56:11Z to
// 2025-07-19T10:01:18Z (the QE Identity expires first).
var (
	inWindow   = time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)
	afterCRL   = time.Date(2025, 7, 19, 10, 30, 0, 0, time.UTC) // the PCK CRL's NextUpdate (10:23:18) has passed
	phalaFMSPC = "00A067110000"
	acceptCfg  = []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}
)

func phala(t testing.TB) ([]byte, *dcap.Quote, *dcap.Collateral) {
	t.Helper()
	raw, err := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote")
	if err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/phala-dcap-qvl/sgx_quote_collateral.json")
	if err != nil {
		t.Fatal(err)
	}
	col, err := dcap.ParseCollateralBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw, q, col
}

func failedCheck(res *dcap.Result) string {
	if res == nil {
		return ""
	}
	for _, c := range res.Checks {
		if c.Status == dcap.Fail {
			return c.Name
		}
	}
	return ""
}

// TestPCSVerify: a verifier given only a PCCS URL verifies the real quote
// at a time in its collateral's window and refuses it outside; what it
// fetched equals the recorded bundle.
func TestPCSVerify(t *testing.T) {
	raw, q, col := phala(t)
	srv := dcaptest.NewServer(col, phalaFMSPC)
	defer srv.Close()
	pcs := &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}
	got, err := pcs.Fetch(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.TCBInfo) != string(col.TCBInfo) || string(got.QEIdentity) != string(col.QEIdentity) ||
		string(got.PCKCRL.Raw) != string(col.PCKCRL.Raw) || string(got.RootCACRL.Raw) != string(col.RootCACRL.Raw) ||
		len(got.TCBInfoIssuerChain) != len(col.TCBInfoIssuerChain) || len(got.PCKCRLIssuerChain) == 0 {
		t.Fatal("fetched collateral differs from the recorded bundle")
	}
	res, err := dcap.Verify(raw, got, dcap.Options{Time: inWindow, Accept: acceptCfg})
	if err != nil || res.TCBStatus != dcap.ConfigurationAndSWHardeningNeeded {
		t.Fatalf("in the window: %v %v", res.TCBStatus, err)
	}
	if _, err := dcap.Verify(raw, got, dcap.Options{Time: afterCRL, Accept: acceptCfg}); err == nil {
		t.Error("accepted after the collateral expired")
	}
	if _, err := dcap.Verify(raw, got, dcap.Options{Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Accept: acceptCfg}); err == nil {
		t.Error("accepted before the collateral was issued")
	}
	for _, k := range []string{"/tcb", "/qe/identity", "/pckcrl", "/rootcacrl"} {
		if srv.Requests()[k] != 1 {
			t.Errorf("%s: %d requests", k, srv.Requests()[k])
		}
	}
}

// TestCacheSingleflight: 100 concurrent verifications make exactly one
// request per piece of collateral, and later ones none.
func TestCacheSingleflight(t *testing.T) {
	raw, q, col := phala(t)
	srv := dcaptest.NewServer(col, phalaFMSPC)
	defer srv.Close()
	srv.Fail = func(*http.Request) int { time.Sleep(30 * time.Millisecond); return 0 } // slow, so the callers overlap
	clock := inWindow
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Time: func() time.Time { return clock }}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			c, err := cache.Collateral(context.Background(), q)
			if err == nil {
				_, err = dcap.Verify(raw, c, dcap.Options{Time: inWindow, Accept: acceptCfg})
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cache.Collateral(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/tcb", "/qe/identity", "/pckcrl", "/rootcacrl"} {
		if n := srv.Requests()[k]; n != 1 {
			t.Errorf("%s: %d requests for 101 verifications, want 1", k, n)
		}
	}
}

// TestCacheExpiry: items are refreshed in the background when they near
// their nextUpdate, never served past it, and kept on disk across runs.
func TestCacheExpiry(t *testing.T) {
	raw, q, col := phala(t)
	srv := dcaptest.NewServer(col, phalaFMSPC)
	defer srv.Close()
	var mu sync.Mutex
	clock := inWindow
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }
	dir := t.TempDir()
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Dir: dir, Time: now, RefreshBefore: time.Hour}
	defer cache.Close()
	if _, err := cache.Collateral(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	// Within an hour of the QE Identity's nextUpdate (10:01:18): served
	// from the cache at once, refreshed in the background.
	set(time.Date(2025, 7, 19, 9, 30, 0, 0, time.UTC))
	if _, err := cache.Collateral(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	cache.Close() // wait for the refresh
	if n := srv.Requests()["/qe/identity"]; n != 2 {
		t.Errorf("QE Identity near expiry: %d requests, want a background refresh (2)", n)
	}
	// A restart with the same directory uses the kept collateral.
	set(inWindow)
	again := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Dir: dir, Time: now}
	before := srv.Requests()["/tcb"]
	if _, err := again.Collateral(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	if srv.Requests()["/tcb"] != before {
		t.Error("a new cache on the same directory fetched again")
	}
	// Past expiry nothing stale is served: the cache fetches, the server
	// has only stale collateral, and the cache refuses to keep or serve
	// it; uncached, verification refuses it by name.
	set(afterCRL)
	if _, err := cache.Collateral(t.Context(), q); !errors.Is(err, dcap.ErrFetch) || !errors.Is(err, dcap.ErrCRL) {
		t.Errorf("stale CRL through the cache: %v, want ErrFetch and ErrCRL", err)
	}
	if srv.Requests()["/pckcrl"] < 2 {
		t.Error("an expired CRL was served from the cache")
	}
	c, err := (&dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}).Fetch(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dcap.Verify(raw, c, dcap.Options{Time: afterCRL, Accept: acceptCfg})
	if err == nil || failedCheck(res) != dcap.CheckPCKCRL {
		t.Errorf("stale CRL: %v (failed check %q, want %q)", err, failedCheck(res), dcap.CheckPCKCRL)
	}
}

// TestPCSErrors: 5xx and 429 are retried, other 4xx are not, timeouts end
// the request, and collateral that does not verify is refused with the
// check names of quote verify.
func TestPCSErrors(t *testing.T) {
	raw, q, col := phala(t)
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		srv := dcaptest.NewServer(col, phalaFMSPC)
		n := map[string]int{}
		var mu sync.Mutex
		srv.Fail = func(r *http.Request) int {
			mu.Lock()
			defer mu.Unlock()
			if n[r.URL.Path]++; n[r.URL.Path] <= 2 {
				return code
			}
			return 0
		}
		pcs := &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true, Backoff: time.Millisecond}
		if _, err := pcs.Fetch(t.Context(), q); err != nil {
			t.Errorf("%d twice, then OK: %v", code, err)
		}
		if got := srv.Requests()[dcaptest.Prefix+"/tcb"] + srv.Requests()["/tcb"]; got != 3 {
			t.Errorf("%d: %d attempts, want 3", code, got)
		}
		srv.Close()
	}
	srv := dcaptest.NewServer(col, "FFFFFFFFFFFF") // no TCB Info for this platform: 404
	pcs := &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true, Backoff: time.Millisecond}
	if _, err := pcs.Fetch(t.Context(), q); !errors.Is(err, dcap.ErrFetch) || srv.Requests()["/tcb"] != 1 {
		t.Errorf("404: %v after %d attempts, want one attempt", err, srv.Requests()["/tcb"])
	}
	srv.Close()

	srv = dcaptest.NewServer(col, phalaFMSPC)
	srv.Fail = func(*http.Request) int { time.Sleep(300 * time.Millisecond); return 0 }
	pcs = &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true, Timeout: 50 * time.Millisecond, Retries: -1}
	if _, err := pcs.Fetch(t.Context(), q); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v", err)
	}
	srv.Close()

	// Collateral that does not verify, served as if genuine.
	for name, c := range map[string]struct {
		mod   func(*dcap.Collateral)
		check string
	}{
		"tampered TCB Info signature": {func(c *dcap.Collateral) { c.TCBInfoSignature[5] ^= 1 }, dcap.CheckTCBInfoSignature},
		"TCB Info for another FMSPC": {func(c *dcap.Collateral) {
			c.TCBInfo = []byte(string(c.TCBInfo[:bytesIndex(c.TCBInfo, phalaFMSPC)]) + "00906ED50000" + string(c.TCBInfo[bytesIndex(c.TCBInfo, phalaFMSPC)+12:]))
		}, "fetch"},
		"tampered QE Identity": {func(c *dcap.Collateral) { c.QEIdentitySignature[0] ^= 1 }, dcap.CheckQEIdentitySignature},
	} {
		_, _, fresh := phala(t)
		c.mod(fresh)
		srv := dcaptest.NewServer(fresh, phalaFMSPC)
		// The cache verifies before it keeps anything: it refuses all of
		// them, and keeps nothing on disk.
		dir := t.TempDir()
		_, err := (&dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Dir: dir, Time: func() time.Time { return inWindow }}).Collateral(t.Context(), q)
		if !errors.Is(err, dcap.ErrFetch) {
			t.Errorf("%s: cache: %v, want ErrFetch", name, err)
		}
		piece := "tcb-*.json"
		if c.check == dcap.CheckQEIdentitySignature {
			piece = "qe-*.json"
		}
		if kept, _ := filepath.Glob(filepath.Join(dir, piece)); len(kept) != 0 {
			t.Errorf("%s: the cache kept %v", name, kept)
		}
		// The uncached client hands it to Verify, which refuses it.
		got, err := (&dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}).Fetch(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if c.check == "fetch" {
			c.check = dcap.CheckTCBInfoSignature
		}
		res, err := dcap.Verify(raw, got, dcap.Options{Time: inWindow, Accept: acceptCfg})
		if err == nil || failedCheck(res) != c.check {
			t.Errorf("%s: %v (failed check %q, want %q)", name, err, failedCheck(res), c.check)
		}
		srv.Close()
	}
}

func bytesIndex(b []byte, s string) int {
	for i := range len(b) - len(s) + 1 {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// TestPCKCAOf: which CRL to ask for follows the PCK certificate's issuer.
func TestPCKCAOf(t *testing.T) {
	_, q, _ := phala(t)
	chain, err := q.PCKChain()
	if err != nil {
		t.Fatal(err)
	}
	if ca, err := dcap.PCKCAOf(chain[0]); err != nil || ca != dcap.CAProcessor {
		t.Errorf("Phala's PCK: %v %v", ca, err)
	}
	if _, err := dcap.PCKCAOf(chain[1]); err == nil {
		t.Error("the PCK CA's own certificate (issued by the root) named a PCK CA")
	}

}

// TestBundleRoundTrip: a bundle written by MarshalBundle reads back to the
// same collateral.
func TestBundleRoundTrip(t *testing.T) {
	_, _, col := phala(t)
	b, err := col.MarshalBundle()
	if err != nil {
		t.Fatal(err)
	}
	back, err := dcap.ParseCollateralBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.TCBInfo) != string(col.TCBInfo) || string(back.QEIdentitySignature) != string(col.QEIdentitySignature) ||
		string(back.PCKCRL.Raw) != string(col.PCKCRL.Raw) || len(back.PCKCRLIssuerChain) != len(col.PCKCRLIssuerChain) {
		t.Error("bundle round trip changed the collateral")
	}
}
