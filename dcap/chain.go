package dcap

import (
	"bytes"
	"crypto"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

//go:embed intel_sgx_root_ca.der
var intelRootDER []byte

// IntelRootCA returns the Intel SGX Root CA certificate, the default trust
// anchor of Verify. Chains are checked against its public key (P-256 point
// x = 0ba9c4c0…5525f5, y = 67918e2e…ae7394), so any certificate of the same
// key, such as the older 2033 encoding that some chains carry, is accepted
// as a chain's root. Each call returns a new copy.
func IntelRootCA() *x509.Certificate {
	c, err := x509.ParseCertificate(intelRootDER)
	if err != nil {
		// The embedded bytes are a constant of the build; tested.
		panic("dcap: embedded Intel SGX Root CA does not parse: " + err.Error())
	}
	return c
}

// ParseCertChain decodes PEM certificates (in any order), ignoring
// surrounding whitespace. It also accepts the URL-encoded PEM that Intel's
// PCS returns in its *-Issuer-Chain HTTP headers.
func ParseCertChain(pemData []byte) ([]*x509.Certificate, error) {
	if t := bytes.TrimSpace(pemData); bytes.HasPrefix(t, []byte("-----BEGIN%20")) || bytes.HasPrefix(t, []byte("%2D%2D%2D")) {
		s, err := url.QueryUnescape(string(t))
		if err != nil {
			return nil, fmt.Errorf("%w: URL-encoded PEM: %v", ErrChain, err)
		}
		pemData = []byte(s)
	}
	var out []*x509.Certificate
	rest := pemData
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %d is %q, want CERTIFICATE", ErrChain, len(out), truncate(blk.Type, 40))
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrChain, len(out), err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimRight(rest, "\x00\r\n\t ")) != 0 {
		return nil, fmt.Errorf("%w: %d bytes of non-PEM data after certificate %d", ErrChain, len(rest), len(out))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no certificates", ErrChain)
	}
	return out, nil
}

// chainRole is what a chain's leaf is for. The role fixes the chain's
// shape, so that a key certified for one purpose cannot stand in for
// another (for example, a leaked PCK key signing a TCB Info).
type chainRole int

const (
	// rolePCK: PCK certificate <- PCK Platform/Processor CA <- root. The
	// leaf is not a CA, carries the SGX extension and its CN names it.
	rolePCK chainRole = iota
	// roleTCBSigning: TCB Signing certificate <- root. The leaf is not a
	// CA, carries no SGX extension and its CN names it.
	roleTCBSigning
	// rolePCKCA: PCK Platform/Processor CA <- root (the PCK CRL's issuer).
	rolePCKCA
)

func (r chainRole) String() string {
	switch r {
	case rolePCK:
		return "PCK certificate chain"
	case roleTCBSigning:
		return "TCB signing chain"
	default:
		return "PCK CA chain"
	}
}

// Common-name phrases Intel's QVL requires; the simulated platform's names
// contain them too.
const (
	cnPCK         = "SGX PCK Certificate"
	cnPlatformCA  = "SGX PCK Platform CA"
	cnProcessorCA = "SGX PCK Processor CA"
	cnTCBSigning  = "SGX TCB Signing"
)

func isPCKCA(c *x509.Certificate) bool {
	return c.IsCA && (strings.Contains(c.Subject.CommonName, cnPlatformCA) || strings.Contains(c.Subject.CommonName, cnProcessorCA))
}

func hasSGXExtension(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSGXExtensions) {
			return true
		}
	}
	return false
}

// verifyChain checks that certs form a chain for role from its leaf to a
// root whose public key equals root's, every certificate valid at now, and
// returns the verified chain, leaf first and root last. Certificates are
// ordered by issuer, not by their position; every certificate given must
// be on the chain.
func verifyChain(certs []*x509.Certificate, root *x509.Certificate, now time.Time, role chainRole) ([]*x509.Certificate, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: no trusted root configured", ErrUntrustedRoot)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: %s: no certificates", ErrChain, role)
	}
	// The leaf is the one certificate that issued no other (by name; the
	// signatures are checked when the chain is verified below).
	var leaf *x509.Certificate
	for _, c := range certs {
		issuer := false
		for _, d := range certs {
			if d != c && !bytes.Equal(d.Raw, c.Raw) && bytes.Equal(d.RawIssuer, c.RawSubject) {
				issuer = true
			}
		}
		if !issuer {
			if leaf != nil && !bytes.Equal(leaf.Raw, c.Raw) {
				return nil, fmt.Errorf("%w: %s: two leaf certificates (%q and %q)", ErrChain, role, truncate(leaf.Subject.String(), 80), truncate(c.Subject.String(), 80))
			}
			leaf = c
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("%w: %s: no leaf certificate (the issuers form a cycle)", ErrChain, role)
	}
	// Pin the root by public key: the configured root and any self-issued
	// certificate of the chain with the same key are trust anchors. Trust
	// comes from the key, so the anchor's self-signature is not checked.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range certs {
		switch {
		case c == leaf:
		case bytes.Equal(c.RawSubject, c.RawIssuer) && publicKeyEqual(c, root):
			roots.AddCert(c)
		default:
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("%w: %s: %v", ErrUntrustedRoot, role, err)
		}
		return nil, fmt.Errorf("%w: %s at %s: %v", ErrChain, role, now.UTC().Format(time.RFC3339), err)
	}
	want := 3
	if role != rolePCK {
		want = 2
	}
	var chain []*x509.Certificate
	for _, c := range chains {
		if len(c) == want {
			chain = c
			break
		}
	}
	if chain == nil {
		return nil, fmt.Errorf("%w: %s: want %d certificates from leaf to root, got %d", ErrChain, role, want, len(chains[0]))
	}
	// Every certificate given must be on the chain (or be an encoding of
	// the root).
	for _, c := range certs {
		on := publicKeyEqual(c, root) && bytes.Equal(c.RawSubject, c.RawIssuer)
		for _, d := range chain {
			on = on || bytes.Equal(c.Raw, d.Raw)
		}
		if !on {
			return nil, fmt.Errorf("%w: %s: certificate %q is not on the chain", ErrChain, role, truncate(c.Subject.String(), 80))
		}
	}
	cn := leaf.Subject.CommonName
	switch role {
	case rolePCK:
		if leaf.IsCA || !hasSGXExtension(leaf) || !strings.Contains(cn, cnPCK) {
			return nil, fmt.Errorf("%w: %s: leaf %q is not a PCK certificate (want a non-CA certificate with the SGX extension and %q in its CN)", ErrChain, role, truncate(cn, 80), cnPCK)
		}
		if !isPCKCA(chain[1]) {
			return nil, fmt.Errorf("%w: %s: issuer %q is not a PCK Platform or Processor CA", ErrChain, role, truncate(chain[1].Subject.CommonName, 80))
		}
	case roleTCBSigning:
		if leaf.IsCA || hasSGXExtension(leaf) || !strings.Contains(cn, cnTCBSigning) {
			return nil, fmt.Errorf("%w: %s: leaf %q is not a TCB signing certificate (want a non-CA certificate without the SGX extension and %q in its CN)", ErrChain, role, truncate(cn, 80), cnTCBSigning)
		}
	case rolePCKCA:
		if !isPCKCA(leaf) {
			return nil, fmt.Errorf("%w: %s: %q is not a PCK Platform or Processor CA", ErrChain, role, truncate(cn, 80))
		}
	}
	return chain, nil
}

func publicKeyEqual(a, b *x509.Certificate) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	k, ok := a.PublicKey.(eq)
	return ok && k.Equal(b.PublicKey)
}

// truncate shortens hostile strings before they go into error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
