package dcap

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Errors of quote verification; each failure wraps one of them.
var (
	ErrChain         = errors.New("dcap: PCK certificate chain")
	ErrQEReportSig   = errors.New("dcap: QE report signature")
	ErrQEBinding     = errors.New("dcap: QE report data does not bind the attestation key")
	ErrQuoteSig      = errors.New("dcap: quote signature")
	ErrNoPCKChain    = errors.New("dcap: no PCK certificate chain")
	ErrUntrustedRoot = errors.New("dcap: chain does not end at the trusted root")
)

// ParseCertChain decodes a PEM certificate chain (any order).
func ParseCertChain(pemData []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := pemData
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %q, want CERTIFICATE", ErrChain, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrChain, len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimRight(rest, "\x00\r\n\t ")) != 0 {
		return nil, fmt.Errorf("%w: %d bytes of non-PEM data", ErrChain, len(rest))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no certificates", ErrChain)
	}
	return out, nil
}

// VerifyChain checks that certs form a chain from a leaf to a self-signed
// root whose public key equals root's, valid at time now. Certificates are
// ordered by issuer, not by their position. It returns the leaf.
func VerifyChain(certs []*x509.Certificate, root *x509.Certificate, now time.Time) (*x509.Certificate, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: no trusted root configured", ErrUntrustedRoot)
	}
	// The leaf is the certificate that issued no other one (by name; the
	// signatures are checked when the chain is verified below).
	var leaf *x509.Certificate
	for _, c := range certs {
		issuer := false
		for _, d := range certs {
			if d != c && bytes.Equal(d.RawIssuer, c.RawSubject) {
				issuer = true
			}
		}
		if !issuer {
			if leaf != nil {
				return nil, fmt.Errorf("%w: two leaf certificates (%q and %q)", ErrChain, leaf.Subject, c.Subject)
			}
			leaf = c
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("%w: no leaf certificate (the chain is a cycle)", ErrChain)
	}
	// Pin the root by public key: the chain's own root certificate (or the
	// configured one) must carry it. Trust comes from the key, so the
	// root's self-signature adds nothing and is not checked.
	roots := x509.NewCertPool()
	pinned := false
	for _, c := range append(certs, root) {
		if bytes.Equal(c.RawSubject, c.RawIssuer) && publicKeyEqual(c, root) {
			roots.AddCert(c)
			pinned = true
		}
	}
	if !pinned {
		return nil, ErrUntrustedRoot
	}
	inter := x509.NewCertPool()
	for _, c := range certs {
		if c != leaf {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("%w: %v", ErrUntrustedRoot, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrChain, err)
	}
	return leaf, nil
}

func publicKeyEqual(a, b *x509.Certificate) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	k, ok := a.PublicKey.(eq)
	return ok && k.Equal(b.PublicKey)
}

// verifyP256 checks a raw r||s ECDSA P-256 signature over SHA-256(msg).
func verifyP256(pub *ecdsa.PublicKey, msg []byte, sig [64]byte) bool {
	d := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, d[:], r, s)
}

// AttestationKey returns the quote's attestation public key.
func (q *Quote) AttestationKey() (*ecdsa.PublicKey, error) {
	raw := append([]byte{4}, q.AttestKey[:]...)
	if _, err := ecdh.P256().NewPublicKey(raw); err != nil {
		return nil, fmt.Errorf("%w: attestation key is not a P-256 point", ErrQuoteSig)
	}
	x, y := new(big.Int).SetBytes(q.AttestKey[:32]), new(big.Int).SetBytes(q.AttestKey[32:])
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, nil
}

// PCKChain returns the PCK certificate chain carried by the quote
// (certification data type 5).
func (q *Quote) PCKChain() ([]*x509.Certificate, error) {
	if q.Certification.Type != CertPCKChain {
		return nil, fmt.Errorf("%w: certification data type %d carries no chain; supply the PCK certificate", ErrNoPCKChain, q.Certification.Type)
	}
	return ParseCertChain(q.Certification.Data)
}

// Check is the outcome of one verification step.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// VerifySignatures checks the quote's cryptographic chain against a trusted
// root: the PCK chain to the root (by public key) at time now, the QE report
// signature by the PCK key, the QE report data binding the attestation key
// and QE authentication data, and the quote signature by the attestation
// key. chain, if not nil, replaces the chain carried in the quote.
//
// It does not check revocation, TCB level or QE identity: that needs Intel
// collateral (see Verify). It returns the PCK leaf and the checks made.
func (q *Quote) VerifySignatures(root *x509.Certificate, chain []*x509.Certificate, now time.Time) (*x509.Certificate, []Check, error) {
	var checks []Check
	fail := func(name string, err error) (*x509.Certificate, []Check, error) {
		return nil, append(checks, Check{Name: name, Detail: err.Error()}), err
	}
	if chain == nil {
		c, err := q.PCKChain()
		if err != nil {
			return fail("pck_chain", err)
		}
		chain = c
	}
	leaf, err := VerifyChain(chain, root, now)
	if err != nil {
		return fail("pck_chain", err)
	}
	checks = append(checks, Check{Name: "pck_chain", OK: true, Detail: "chain to the pinned root, valid at " + now.UTC().Format(time.RFC3339)})
	return q.verifyWithLeaf(leaf, checks)
}

// verifyWithLeaf checks everything after the chain: the QE report
// signature by the PCK leaf's key, the QE report data binding, and the
// quote signature.
func (q *Quote) verifyWithLeaf(leaf *x509.Certificate, checks []Check) (*x509.Certificate, []Check, error) {
	fail := func(name string, err error) (*x509.Certificate, []Check, error) {
		return nil, append(checks, Check{Name: name, Detail: err.Error()}), err
	}
	pck, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pck.Curve != elliptic.P256() {
		return fail("qe_report_signature", fmt.Errorf("%w: PCK key is %T, want ECDSA P-256", ErrQEReportSig, leaf.PublicKey))
	}
	if !verifyP256(pck, q.QEReport.Marshal(), q.QEReportSig) {
		return fail("qe_report_signature", fmt.Errorf("%w: does not verify with the PCK key", ErrQEReportSig))
	}
	checks = append(checks, Check{Name: "qe_report_signature", OK: true})
	h := sha256.New()
	h.Write(q.AttestKey[:])
	h.Write(q.QEAuthData)
	want := h.Sum(nil)
	rd := q.QEReport.ReportData
	if !bytes.Equal(rd[:32], want) || !bytes.Equal(rd[32:], make([]byte, 32)) {
		return fail("qe_report_data", ErrQEBinding)
	}
	checks = append(checks, Check{Name: "qe_report_data", OK: true, Detail: "SHA-256(attestation key || QE auth data)"})
	return q.verifyQuoteSignature(leaf, checks)
}

// verifyQuoteSignature checks the quote's signature by its attestation key.
func (q *Quote) verifyQuoteSignature(leaf *x509.Certificate, checks []Check) (*x509.Certificate, []Check, error) {
	fail := func(name string, err error) (*x509.Certificate, []Check, error) {
		return nil, append(checks, Check{Name: name, Detail: err.Error()}), err
	}
	ak, err := q.AttestationKey()
	if err != nil {
		return fail("quote_signature", err)
	}
	if !verifyP256(ak, q.SignedBytes(), q.Signature) {
		return fail("quote_signature", fmt.Errorf("%w: does not verify with the attestation key", ErrQuoteSig))
	}
	checks = append(checks, Check{Name: "quote_signature", OK: true})
	return leaf, checks, nil
}
