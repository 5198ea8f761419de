package dcap

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/magesgx/mage/internal/atomicfile"
)

// Cache is a CollateralSource in front of a PCS or PCCS. It keeps each
// piece of collateral under what it is for (TCB Info by FMSPC and update
// policy, the QE Identity by update policy, each PCK CA's CRL, the root
// CA's CRL) until its nextUpdate (a CRL's NextUpdate, or sooner if a
// certificate of its chain expires), refreshes it in the background when
// it comes within RefreshBefore of that time, and never serves it past
// it. Concurrent requests for the same piece make one fetch, and a failed
// fetch is remembered for RetryFailuresAfter, so that no number of
// verifications can make the cache flood its PCS. With Dir set, every
// piece is also kept on disk (written atomically) and read back after a
// restart.
//
// The cache keeps only collateral that verifies: the root CA's CRL signed
// by the root, a PCK CA's CRL signed by that CA whose chain leads to the
// root (and which the root CA's CRL does not revoke), TCB Info and QE
// Identity signed by a TCB Signing certificate of the root that the root
// CA's CRL does not revoke, each current at the time of the check. It checks
// what it reads back from Dir the same way (and deletes what fails), and
// checks a kept piece again when the root CA's CRL it was checked under is
// replaced (and evicts it if it now fails). So a forged document, on the
// wire or in the directory, is never served twice. Verify still checks
// everything at every use.
type Cache struct {
	PCS *PCS // where collateral comes from (required)
	// Root is the trust anchor collateral is checked against before it is
	// kept (nil: the Intel SGX Root CA).
	Root *x509.Certificate
	// Dir, if set, is a directory that keeps the collateral across runs.
	Dir string
	// RefreshBefore is how long before expiry a background refresh starts
	// (default one hour).
	RefreshBefore time.Duration
	// RetryFailuresAfter is how long a failed fetch is remembered: a
	// request for the same piece within it fails at once, without a new
	// request (default 30s).
	RetryFailuresAfter time.Duration
	// Time gives the current time (default time.Now).
	Time func() time.Time

	mu       sync.Mutex
	entries  map[string]*cacheEntry
	flights  map[string]*flight
	failures map[string]failure
	bg       sync.WaitGroup // background refreshes
}

// Close waits for background refreshes to finish. The cache stays usable.
func (c *Cache) Close() { c.bg.Wait() }

type cacheEntry struct {
	item       cachedItem
	refreshing bool
	checkedBy  [32]byte // the root CA CRL the item was checked under
}

// cachedItem is one piece of collateral as received.
type cachedItem struct {
	Body    []byte              `json:"body,omitempty"` // signed JSON, or CRL DER
	Sig     []byte              `json:"sig,omitempty"`
	Chain   []*x509.Certificate `json:"-"`
	ChainPE []byte              `json:"chain,omitempty"` // PEM, on disk
	Expires time.Time           `json:"expires"`
}

type flight struct {
	done chan struct{}
	item cachedItem
	err  error
}

// failure is a remembered failed fetch.
type failure struct {
	err   error
	until time.Time
}

// maxFailures bounds the remembered failures: FMSPCs come from verified
// PCK certificates, but a long-running member may meet many platforms.
const maxFailures = 1024

func (c *Cache) now() time.Time {
	if c.Time != nil {
		return c.Time()
	}
	return time.Now()
}

func (c *Cache) refreshBefore() time.Duration {
	if c.RefreshBefore > 0 {
		return c.RefreshBefore
	}
	return time.Hour
}

func (c *Cache) retryFailuresAfter() time.Duration {
	if c.RetryFailuresAfter > 0 {
		return c.RetryFailuresAfter
	}
	return 30 * time.Second
}

func (c *Cache) root() *x509.Certificate {
	if c.Root != nil {
		return c.Root
	}
	return IntelRootCA()
}

// piece is one piece of collateral: its key, how to fetch it, and how to
// check it before it is kept.
type piece struct {
	key   string
	fetch func(context.Context) (cachedItem, error)
	check func(cachedItem, time.Time) error
	under [32]byte // the root CA CRL its check depends on (zero: none)
}

// Collateral implements CollateralSource. It needs the quote's PCK chain
// only to know which collateral to get: call it for quotes whose chain and
// signatures have verified (attest does), so that an unauthenticated party
// cannot choose what is fetched.
func (c *Cache) Collateral(ctx context.Context, q *Quote) (*Collateral, error) {
	if c.PCS == nil {
		return nil, fmt.Errorf("%w: Cache.PCS is nil", ErrFetch)
	}
	k, err := keysOf(q)
	if err != nil {
		return nil, err
	}
	root := c.root()
	update := c.PCS.Update
	if update == "" {
		update = UpdateStandard
	}
	col := &Collateral{}

	// The root CA's CRL first: every other piece is checked under it.
	rootItem, err := c.get(ctx, piece{key: "rootcrl", fetch: func(ctx context.Context) (cachedItem, error) {
		crl, err := c.PCS.RootCACRL(ctx)
		if err != nil {
			return cachedItem{}, err
		}
		return cachedItem{Body: crl.Raw, Expires: crl.NextUpdate}, nil
	}, check: func(it cachedItem, now time.Time) error {
		crl, err := x509.ParseRevocationList(it.Body)
		if err != nil {
			return fmt.Errorf("%w: root CA CRL: %w", ErrCRL, err)
		}
		return checkCRL(crl, root, now, nil)
	}})
	if err != nil {
		return nil, err
	}
	if col.RootCACRL, err = x509.ParseRevocationList(rootItem.Body); err != nil {
		return nil, fmt.Errorf("%w: cached root CA CRL: %w", ErrCollateral, err)
	}
	rootCRL, under := col.RootCACRL, sha256.Sum256(rootItem.Body)

	pck, err := c.get(ctx, piece{key: "pckcrl-" + string(k.ca), under: under, fetch: func(ctx context.Context) (cachedItem, error) {
		crl, chain, err := c.PCS.PCKCRL(ctx, k.ca)
		if err != nil {
			return cachedItem{}, err
		}
		return cachedItem{Body: crl.Raw, Chain: chain, Expires: crl.NextUpdate}, nil
	}, check: func(it cachedItem, now time.Time) error {
		crl, err := x509.ParseRevocationList(it.Body)
		if err != nil {
			return fmt.Errorf("%w: PCK CRL: %w", ErrCRL, err)
		}
		chain, err := verifyChain(it.Chain, root, now, rolePCKCA)
		if err != nil {
			return fmt.Errorf("PCK CRL issuer chain: %w", err)
		}
		if err := checkCRL(rootCRL, root, now, chain[0]); err != nil {
			return fmt.Errorf("PCK CRL issuer: %w", err)
		}
		return checkCRL(crl, chain[0], now, nil)
	}})
	if err != nil {
		return nil, err
	}
	if col.PCKCRL, err = x509.ParseRevocationList(pck.Body); err != nil {
		return nil, fmt.Errorf("%w: cached PCK CRL: %w", ErrCollateral, err)
	}
	col.PCKCRLIssuerChain = pck.Chain

	// A TD quote's TCB Info and QE identity are TDX's: other keys, other
	// parsers, so the two never stand in for each other.
	tcbKey, qeKey, parseTI, parseQI := "tcb-", "qe-", ParseTCBInfo, ParseQEIdentity
	if k.tdx {
		tcbKey, qeKey, parseTI, parseQI = "tdxtcb-", "tdqe-", ParseTDXTCBInfo, ParseTDQEIdentity
	}
	tcb, err := c.get(ctx, piece{key: tcbKey + string(update) + "-" + k.fmspc, under: under, fetch: func(ctx context.Context) (cachedItem, error) {
		body, sig, chain, err := c.PCS.tcbInfo(ctx, k.fmspc, k.tdx)
		if err != nil {
			return cachedItem{}, err
		}
		ti, err := parseTI(body)
		if err != nil {
			return cachedItem{}, fmt.Errorf("%w: %w", ErrTCBInfo, err)
		}
		return cachedItem{Body: body, Sig: sig, Chain: chain, Expires: ti.NextUpdate}, nil
	}, check: func(it cachedItem, now time.Time) error {
		if err := checkSignedCollateral(it.Body, it.Sig, it.Chain, root, rootCRL, now); err != nil {
			return fmt.Errorf("%w: %w", ErrTCBInfo, err)
		}
		ti, err := parseTI(it.Body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTCBInfo, err)
		}
		if !strings.EqualFold(ti.FMSPC, k.fmspc) {
			// Never keep another platform's TCB Info under this FMSPC.
			return fmt.Errorf("%w: asked for the TCB Info of FMSPC %s, got FMSPC %s", ErrTCBInfo, k.fmspc, truncate(ti.FMSPC, 20))
		}
		return checkWindow(ti.IssueDate, ti.NextUpdate, now)
	}})
	if err != nil {
		return nil, err
	}
	col.TCBInfo, col.TCBInfoSignature, col.TCBInfoIssuerChain = tcb.Body, tcb.Sig, tcb.Chain

	qe, err := c.get(ctx, piece{key: qeKey + string(update), under: under, fetch: func(ctx context.Context) (cachedItem, error) {
		body, sig, chain, err := c.PCS.qeIdentity(ctx, k.tdx)
		if err != nil {
			return cachedItem{}, err
		}
		qi, err := parseQI(body)
		if err != nil {
			return cachedItem{}, fmt.Errorf("%w: %w", ErrQEIdentity, err)
		}
		return cachedItem{Body: body, Sig: sig, Chain: chain, Expires: qi.NextUpdate}, nil
	}, check: func(it cachedItem, now time.Time) error {
		if err := checkSignedCollateral(it.Body, it.Sig, it.Chain, root, rootCRL, now); err != nil {
			return fmt.Errorf("%w: %w", ErrQEIdentity, err)
		}
		qi, err := parseQI(it.Body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrQEIdentity, err)
		}
		return checkWindow(qi.IssueDate, qi.NextUpdate, now)
	}})
	if err != nil {
		return nil, err
	}
	col.QEIdentity, col.QEIdentitySignature, col.QEIdentityIssuerChain = qe.Body, qe.Sig, qe.Chain
	return col, nil
}

// expiry is when an item stops being servable: its nextUpdate, or sooner
// if a certificate of its chain expires.
func expiry(it cachedItem) time.Time {
	t := it.Expires
	for _, x := range it.Chain {
		if x.NotAfter.Before(t) {
			t = x.NotAfter
		}
	}
	return t
}

// get returns the piece: from memory or disk while it is valid
// (refreshing it in the background when it nears expiry), else from one
// fetch shared by every concurrent caller. What is fetched or read back
// is checked before it is kept or served; a recent failure is returned
// without a new request.
func (c *Cache) get(ctx context.Context, p piece) (cachedItem, error) {
	for {
		now := c.now()
		c.mu.Lock()
		if c.entries == nil {
			c.entries, c.flights, c.failures = map[string]*cacheEntry{}, map[string]*flight{}, map[string]failure{}
		}
		e := c.entries[p.key]
		if e == nil {
			if it, ok := c.load(p, now); ok {
				e = &cacheEntry{item: it, checkedBy: p.under}
				c.entries[p.key] = e
			}
		}
		if e != nil && e.checkedBy != p.under {
			// The root CA CRL changed since this piece was checked.
			if err := p.check(e.item, now); err != nil {
				delete(c.entries, p.key)
				c.remove(p.key)
				e = nil
			} else {
				e.checkedBy = p.under
			}
		}
		if e != nil && now.Before(expiry(e.item)) {
			if !e.refreshing && !now.Before(expiry(e.item).Add(-c.refreshBefore())) {
				e.refreshing = true
				c.bg.Go(func() { c.refresh(p) })
			}
			it := e.item
			c.mu.Unlock()
			return it, nil
		}
		if f, ok := c.failures[p.key]; ok {
			if now.Before(f.until) {
				c.mu.Unlock()
				return cachedItem{}, fmt.Errorf("%w (a fetch failed %s ago; retried after %s)", f.err, now.Sub(f.until.Add(-c.retryFailuresAfter())).Round(time.Millisecond), c.retryFailuresAfter())
			}
			delete(c.failures, p.key)
		}
		f := c.flights[p.key]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			c.flights[p.key] = f
			c.mu.Unlock()
			f.item, f.err = c.fetch(ctx, p)
			c.mu.Lock()
			delete(c.flights, p.key)
			if f.err == nil {
				c.entries[p.key] = &cacheEntry{item: f.item, checkedBy: p.under}
			} else if ctx.Err() == nil {
				// A failure of the PCS, not of this caller: remembered.
				if len(c.failures) >= maxFailures {
					clear(c.failures)
				}
				c.failures[p.key] = failure{err: f.err, until: c.now().Add(c.retryFailuresAfter())}
			}
			close(f.done)
			c.mu.Unlock()
			if f.err == nil {
				c.save(p.key, f.item)
			}
			return f.item, f.err
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return cachedItem{}, fmt.Errorf("%w: %w", ErrFetch, ctx.Err())
		}
		if f.err == nil {
			return f.item, nil
		}
		// The fetch failed. If it failed because its caller gave up, this
		// caller, still waiting, fetches again; else the failure is
		// remembered and returned on the next turn.
	}
}

// fetch fetches a piece and checks it.
func (c *Cache) fetch(ctx context.Context, p piece) (cachedItem, error) {
	it, err := p.fetch(ctx)
	if err != nil {
		return cachedItem{}, err
	}
	now := c.now()
	if err := p.check(it, now); err != nil {
		return cachedItem{}, fmt.Errorf("%w: %s: the fetched collateral does not verify: %w", ErrFetch, p.key, err)
	}
	if !now.Before(expiry(it)) {
		return cachedItem{}, fmt.Errorf("%w: %s: the fetched collateral expired at %s", ErrFetch, p.key, expiry(it).UTC().Format(time.RFC3339))
	}
	return it, nil
}

// refresh fetches a piece again in the background; on failure the current
// item stays, valid until it expires.
func (c *Cache) refresh(p piece) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	it, err := c.fetch(ctx, p)
	c.mu.Lock()
	if err == nil {
		c.entries[p.key] = &cacheEntry{item: it, checkedBy: p.under}
	} else if e := c.entries[p.key]; e != nil {
		e.refreshing = false
	}
	c.mu.Unlock()
	if err == nil {
		c.save(p.key, it)
	}
}

func (c *Cache) path(key string) string { return filepath.Join(c.Dir, key+".json") }

// save writes an item to the cache directory (best effort: the cache still
// works in memory if the disk fails).
func (c *Cache) save(key string, it cachedItem) {
	if c.Dir == "" {
		return
	}
	var pemChain []byte
	for _, x := range it.Chain {
		pemChain = append(pemChain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	it.ChainPE = pemChain
	b, err := json.Marshal(it)
	if err != nil {
		return
	}
	atomicfile.WriteFile(c.path(key), b, 0o644)
}

// remove deletes a piece from the cache directory.
func (c *Cache) remove(key string) {
	if c.Dir != "" {
		os.Remove(c.path(key))
	}
}

// load reads a piece from the cache directory if it is there, verifies and
// has not expired; a file that does not verify is deleted.
func (c *Cache) load(p piece, now time.Time) (cachedItem, bool) {
	if c.Dir == "" {
		return cachedItem{}, false
	}
	b, err := os.ReadFile(c.path(p.key))
	if err != nil {
		return cachedItem{}, false
	}
	var it cachedItem
	if json.Unmarshal(b, &it) != nil {
		c.remove(p.key)
		return cachedItem{}, false
	}
	if len(it.ChainPE) > 0 {
		if it.Chain, err = ParseCertChain(it.ChainPE); err != nil {
			c.remove(p.key)
			return cachedItem{}, false
		}
	}
	if !now.Before(expiry(it)) {
		return cachedItem{}, false
	}
	if p.check(it, now) != nil {
		c.remove(p.key)
		return cachedItem{}, false
	}
	return it, true
}
