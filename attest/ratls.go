package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"github.com/magesgx/mage/sgx"
)

// OIDGramineQuote is the X.509 extension in which Gramine's RA-TLS (and
// compatible tools) carry a raw SGX quote. Gramine's C constant includes the
// DER tag and length (06 09 ...) by mistake; the extension ID itself is this
// OID.
var OIDGramineQuote = asn1.ObjectIdentifier{1, 2, 840, 113741, 1337, 6}

// RATLSCertificate makes a self-signed certificate in Gramine's RA-TLS
// format, for peers that expect one: a fresh ECDSA P-384 key, and a quote
// of this member whose report data holds SHA-256 of the certificate's
// SubjectPublicKeyInfo (the rest zero).
//
// Such evidence is bound to the key but carries no freshness of its own:
// prefer the exchange of Server and Client between our members, and use
// this format to interoperate.
func (m *Member) RATLSCertificate(ctx context.Context) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	var data [sgx.ReportDataSize]byte
	h := sha256.Sum256(spki)
	copy(data[:], h[:])
	quote, err := m.cfg.Backend.Quote(ctx, data)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attest: RA-TLS quote: %w", err)
	}
	return selfSigned(key, pkix.Name{CommonName: "RATLS", Organization: []string{"mage member"}}, nil,
		[]pkix.Extension{{Id: OIDGramineQuote, Value: quote}})
}

// VerifyRATLSCertificate checks a Gramine-style RA-TLS certificate as this
// member checks its peers: the quote in the extension (against the
// configured root and collateral), its binding to the certificate's key, and
// the group membership and policy. It does not prove freshness.
func (m *Member) VerifyRATLSCertificate(ctx context.Context, der []byte) (*Peer, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: RA-TLS certificate: %v", ErrEvidence, err)
	}
	var quote []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDGramineQuote) {
			quote = e.Value
		}
	}
	if quote == nil {
		return nil, fmt.Errorf("%w: RA-TLS certificate has no quote extension %v", ErrEvidence, OIDGramineQuote)
	}
	var want [sgx.ReportDataSize]byte
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	copy(want[:], h[:])
	return m.verify(ctx, Remote, quote, want)
}
