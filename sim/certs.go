package sim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/magesgx/mage/dcap"
)

// pckExtension encodes the PCK certificate's SGX extension: PPID, TCB
// (16 SGX TCB components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type.
func pckExtension(st *platformState) ([]byte, error) {
	x := &dcap.PCKExtensions{PPID: st.PPID, PCESVN: st.PCESVN}
	copy(x.Components[:], st.CPUSVN)
	copy(x.CPUSVN[:], st.CPUSVN)
	copy(x.PCEID[:], st.PCEID)
	copy(x.FMSPC[:], st.FMSPC)
	return x.Marshal()
}

// issueChain makes the simulated root CA, a PCK platform CA and the PCK
// certificate, as PEM (PCK first).
func issueChain(rootKey, interKey, pckKey *ecdsa.PrivateKey, st *platformState) ([]string, error) {
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{"MAGE simulated SGX (not Intel, not trusted)"}}
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	root := &x509.Certificate{
		SerialNumber: serial(), Subject: name("MAGE Simulated SGX Root CA"),
		NotBefore: now, NotAfter: now.AddDate(20, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootCert, err := certify(root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter := &x509.Certificate{
		SerialNumber: serial(), Subject: name("MAGE Simulated SGX PCK Platform CA"),
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interCert, err := certify(inter, rootCert, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	ext, err := pckExtension(st)
	if err != nil {
		return nil, err
	}
	pck := &x509.Certificate{
		SerialNumber: serial(), Subject: name("MAGE Simulated SGX PCK Certificate"),
		NotBefore: now, NotAfter: now.AddDate(7, 0, 0),
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: dcap.OIDSGXExtensions, Value: ext}},
	}
	pckCert, err := certify(pck, interCert, &pckKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	enc := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return []string{enc(pckCert.Raw), enc(interCert.Raw), enc(rootCert.Raw)}, nil
}

// certify issues the certificate tmpl for pub, signed by key as parent.
func certify(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sim: certifying %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
