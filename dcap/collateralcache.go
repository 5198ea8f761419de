package dcap

import (
	"context"
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
// piece of collateral under what it is for (TCB Info by FMSPC, the QE
// Identity, each PCK CA's CRL, the root CA's CRL) until its nextUpdate (a
// CRL's NextUpdate), refreshes it in the background when it comes within
// RefreshBefore of that time, and never serves it past it. Concurrent
// requests for the same piece make one fetch. With Dir set, every piece is
// also kept on disk (written atomically) and read back after a restart.
//
// The cache stores collateral as received; Verify checks its signatures,
// chains and validity at every use, so a cache directory needs no more
// trust than the network.
type Cache struct {
	PCS *PCS // where collateral comes from (required)
	// Dir, if set, is a directory that keeps the collateral across runs.
	Dir string
	// RefreshBefore is how long before expiry a background refresh starts
	// (default one hour).
	RefreshBefore time.Duration
	// Time gives the current time (default time.Now).
	Time func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
	flights map[string]*flight
	bg      sync.WaitGroup // background refreshes
}

// Close waits for background refreshes to finish. The cache stays usable.
func (c *Cache) Close() { c.bg.Wait() }

type cacheEntry struct {
	item       cachedItem
	refreshing bool
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

// Collateral implements CollateralSource.
func (c *Cache) Collateral(ctx context.Context, q *Quote) (*Collateral, error) {
	if c.PCS == nil {
		return nil, fmt.Errorf("%w: Cache.PCS is nil", ErrFetch)
	}
	k, err := keysOf(q)
	if err != nil {
		return nil, err
	}
	col := &Collateral{}
	tcb, err := c.get(ctx, "tcb-"+k.fmspc, func(ctx context.Context) (cachedItem, error) {
		body, sig, chain, err := c.PCS.TCBInfo(ctx, k.fmspc)
		if err != nil {
			return cachedItem{}, err
		}
		ti, err := ParseTCBInfo(body)
		if err != nil {
			return cachedItem{}, fmt.Errorf("%w: %w", ErrTCBInfo, err)
		}
		if !strings.EqualFold(ti.FMSPC, k.fmspc) {
			// Never keep another platform's TCB Info under this FMSPC.
			return cachedItem{}, fmt.Errorf("%w: asked for the TCB Info of FMSPC %s, got FMSPC %s", ErrFetch, k.fmspc, truncate(ti.FMSPC, 20))
		}
		return cachedItem{Body: body, Sig: sig, Chain: chain, Expires: ti.NextUpdate}, nil
	})
	if err != nil {
		return nil, err
	}
	col.TCBInfo, col.TCBInfoSignature, col.TCBInfoIssuerChain = tcb.Body, tcb.Sig, tcb.Chain
	qe, err := c.get(ctx, "qe", func(ctx context.Context) (cachedItem, error) {
		body, sig, chain, err := c.PCS.QEIdentity(ctx)
		if err != nil {
			return cachedItem{}, err
		}
		qi, err := ParseQEIdentity(body)
		if err != nil {
			return cachedItem{}, fmt.Errorf("%w: %w", ErrQEIdentity, err)
		}
		return cachedItem{Body: body, Sig: sig, Chain: chain, Expires: qi.NextUpdate}, nil
	})
	if err != nil {
		return nil, err
	}
	col.QEIdentity, col.QEIdentitySignature, col.QEIdentityIssuerChain = qe.Body, qe.Sig, qe.Chain
	pck, err := c.get(ctx, "pckcrl-"+string(k.ca), func(ctx context.Context) (cachedItem, error) {
		crl, chain, err := c.PCS.PCKCRL(ctx, k.ca)
		if err != nil {
			return cachedItem{}, err
		}
		return cachedItem{Body: crl.Raw, Chain: chain, Expires: crl.NextUpdate}, nil
	})
	if err != nil {
		return nil, err
	}
	if col.PCKCRL, err = x509.ParseRevocationList(pck.Body); err != nil {
		return nil, fmt.Errorf("%w: cached PCK CRL: %w", ErrCollateral, err)
	}
	col.PCKCRLIssuerChain = pck.Chain
	root, err := c.get(ctx, "rootcrl", func(ctx context.Context) (cachedItem, error) {
		crl, err := c.PCS.RootCACRL(ctx)
		if err != nil {
			return cachedItem{}, err
		}
		return cachedItem{Body: crl.Raw, Expires: crl.NextUpdate}, nil
	})
	if err != nil {
		return nil, err
	}
	if col.RootCACRL, err = x509.ParseRevocationList(root.Body); err != nil {
		return nil, fmt.Errorf("%w: cached root CA CRL: %w", ErrCollateral, err)
	}
	return col, nil
}

// get returns the item under key: from memory or disk while it is valid
// (refreshing it in the background when it nears expiry), else from one
// fetch shared by every concurrent caller.
func (c *Cache) get(ctx context.Context, key string, fetch func(context.Context) (cachedItem, error)) (cachedItem, error) {
	now := c.now()
	c.mu.Lock()
	if c.entries == nil {
		c.entries, c.flights = map[string]*cacheEntry{}, map[string]*flight{}
	}
	e := c.entries[key]
	if e == nil {
		if it, ok := c.load(key); ok {
			e = &cacheEntry{item: it}
			c.entries[key] = e
		}
	}
	if e != nil && now.Before(e.item.Expires) {
		if !e.refreshing && !now.Before(e.item.Expires.Add(-c.refreshBefore())) {
			e.refreshing = true
			c.bg.Go(func() { c.refresh(key, fetch) })
		}
		it := e.item
		c.mu.Unlock()
		return it, nil
	}
	f := c.flights[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.mu.Unlock()
		f.item, f.err = fetch(ctx)
		c.store(key, f.item, f.err)
		c.mu.Lock()
		delete(c.flights, key)
		close(f.done)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return cachedItem{}, fmt.Errorf("%w: %w", ErrFetch, ctx.Err())
	}
	return f.item, f.err
}

// refresh fetches key again in the background; on failure the current item
// stays, valid until it expires.
func (c *Cache) refresh(key string, fetch func(context.Context) (cachedItem, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	it, err := fetch(ctx)
	c.store(key, it, err)
	c.mu.Lock()
	if e := c.entries[key]; e != nil {
		e.refreshing = false
	}
	c.mu.Unlock()
}

// store keeps a fetched item if it is still valid: a stale one is handed
// to this verification (which will refuse it) but never kept.
func (c *Cache) store(key string, it cachedItem, err error) {
	if err != nil || !c.now().Before(it.Expires) {
		return
	}
	c.mu.Lock()
	c.entries[key] = &cacheEntry{item: it}
	c.mu.Unlock()
	c.save(key, it)
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

// load reads an item from the cache directory, if there and not expired.
func (c *Cache) load(key string) (cachedItem, bool) {
	if c.Dir == "" {
		return cachedItem{}, false
	}
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		return cachedItem{}, false
	}
	var it cachedItem
	if json.Unmarshal(b, &it) != nil || !c.now().Before(it.Expires) {
		return cachedItem{}, false
	}
	if len(it.ChainPE) > 0 {
		if it.Chain, err = ParseCertChain(it.ChainPE); err != nil {
			return cachedItem{}, false
		}
	}
	return it, true
}
