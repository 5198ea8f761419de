package dcap

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"sync"
	"time"
)

// Verifier is Quote.VerifySignatures for many quotes against one root,
// remembering the quoting-enclave part it has already verified: a platform
// presents the same PCK chain, QE report, QE report signature, attestation
// key and QE authentication data in every quote, so after the first quote
// only the quote's own signature remains to check. A remembered result is
// used only for exactly the same bytes, the same root, and a time inside
// the validity of every certificate of the chain. Like VerifySignatures it
// checks no CRL, TCB level or QE identity.
//
// A Verifier is safe for concurrent use. Its zero value has no root and
// verifies nothing.
type Verifier struct {
	// Root is the trust anchor, pinned by public key. It must not change
	// after the first call.
	Root *x509.Certificate

	mu    sync.Mutex
	cache map[[32]byte]cachedChain
}

type cachedChain struct {
	leaf      *x509.Certificate
	notBefore time.Time
	notAfter  time.Time
}

const maxCachedChains = 1024

// VerifySignatures is Quote.VerifySignatures(v.Root, nil, now) with the
// cache, for quotes that carry their PCK chain (certification data type 5).
func (v *Verifier) VerifySignatures(q *Quote, now time.Time) (*x509.Certificate, []Check, error) {
	if v.Root == nil {
		l := &checklist{names: checkOrder[1:5]}
		return nil, l.checks, l.fail(CheckPCKChain, fmt.Errorf("%w: Verifier.Root is nil", ErrUntrustedRoot))
	}
	if q.Certification.Type != CertPCKChain {
		return q.VerifySignatures(v.Root, nil, now)
	}
	h := sha256.New()
	for _, part := range [][]byte{v.Root.Raw, q.Certification.Data, q.QEReport.Marshal(), q.QEReportSig[:], q.AttestKey[:], q.QEAuthData} {
		var n [8]byte
		for i, l := 0, uint64(len(part)); i < 8; i++ {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:]) // length-prefixed: no two splits of the bytes collide
		h.Write(part)
	}
	key := [32]byte(h.Sum(nil))
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && !now.Before(c.notBefore) && !now.After(c.notAfter) {
		l := &checklist{names: checkOrder[1:5]}
		l.pass(CheckPCKChain, "verified before (cached), valid at "+now.UTC().Format(time.RFC3339))
		l.pass(CheckQEReportSignature, "verified before (cached)")
		l.pass(CheckQEReportData, "verified before (cached)")
		if err := q.verifyQuoteSignature(); err != nil {
			return nil, l.checks, l.fail(CheckQuoteSignature, err)
		}
		l.pass(CheckQuoteSignature, "by the attestation key over header || report body")
		return c.leaf, l.checks, nil
	}
	l := &checklist{names: checkOrder[1:5]}
	chain, err := q.verifySignatures(l, v.Root, nil, now)
	if err != nil {
		return nil, l.checks, err
	}
	c = cachedChain{leaf: chain[0], notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, x := range chain[1:] {
		if x.NotBefore.After(c.notBefore) {
			c.notBefore = x.NotBefore
		}
		if x.NotAfter.Before(c.notAfter) {
			c.notAfter = x.NotAfter
		}
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= maxCachedChains {
		v.cache = map[[32]byte]cachedChain{}
	}
	v.cache[key] = c
	v.mu.Unlock()
	return c.leaf, l.checks, nil
}
