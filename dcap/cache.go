package dcap

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// Verifier verifies quotes' signatures against one root, remembering the
// quoting-enclave part it has already verified: a platform presents the same
// PCK chain, QE report, QE report signature, attestation key and QE
// authentication data in every quote, so after the first quote only the
// quote's own signature remains to check. A remembered result is used only
// for exactly the same bytes and within the chain's validity. It is safe
// for concurrent use.
type Verifier struct {
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

// VerifySignatures is Quote.VerifySignatures with the chain cache, for
// quotes that carry their PCK chain (certification data type 5).
func (v *Verifier) VerifySignatures(q *Quote, now time.Time) (*x509.Certificate, []Check, error) {
	if q.Certification.Type != CertPCKChain {
		return q.VerifySignatures(v.Root, nil, now)
	}
	h := sha256.New()
	h.Write(v.Root.Raw)
	h.Write(q.Certification.Data)
	h.Write(q.QEReport.Marshal())
	h.Write(q.QEReportSig[:])
	h.Write(q.AttestKey[:])
	h.Write(q.QEAuthData)
	key := [32]byte(h.Sum(nil))
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && !now.Before(c.notBefore) && !now.After(c.notAfter) {
		checks := []Check{{Name: "pck_chain", OK: true, Detail: "verified before (cached)"},
			{Name: "qe_report_signature", OK: true, Detail: "verified before (cached)"},
			{Name: "qe_report_data", OK: true, Detail: "verified before (cached)"}}
		return q.verifyQuoteSignature(c.leaf, checks)
	}
	leaf, checks, err := q.VerifySignatures(v.Root, nil, now)
	if err != nil {
		return leaf, checks, err
	}
	chain, _ := q.PCKChain()
	c = cachedChain{leaf: leaf, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	for _, x := range chain {
		c.notBefore = later(c.notBefore, x.NotBefore)
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
	return leaf, checks, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
