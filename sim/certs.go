package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	inter := &x509.Certificate{
		SerialNumber: serial(), Subject: name("MAGE Simulated SGX PCK Platform CA"),
		NotBefore: now, NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, rootCert, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	interCert, _ := x509.ParseCertificate(interDER)
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
	pckDER, err := x509.CreateCertificate(rand.Reader, pck, interCert, &pckKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	enc := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return []string{enc(pckDER), enc(interDER), enc(rootDER)}, nil
}
