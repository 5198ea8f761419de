package sim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"time"
)

// OIDs of Intel's SGX PCK certificate extension.
var (
	oidSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB           = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType       = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
)

type sgxExt struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

func raw(v any) asn1.RawValue {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return asn1.RawValue{FullBytes: b}
}

// sgxExtension encodes the PCK certificate's SGX extension: PPID, TCB
// (16 SGX TCB components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type.
func sgxExtension(st *platformState) []byte {
	var tcb []sgxExt
	for i := range 16 {
		id := append(append(asn1.ObjectIdentifier{}, oidTCB...), i+1)
		tcb = append(tcb, sgxExt{id, raw(int(st.CPUSVN[i]))})
	}
	tcb = append(tcb,
		sgxExt{append(append(asn1.ObjectIdentifier{}, oidTCB...), 17), raw(int(st.PCESVN))},
		sgxExt{append(append(asn1.ObjectIdentifier{}, oidTCB...), 18), raw(st.CPUSVN)},
	)
	exts := []sgxExt{
		{oidPPID, raw(st.PPID)},
		{oidTCB, raw(tcb)},
		{oidPCEID, raw(st.PCEID)},
		{oidFMSPC, raw(st.FMSPC)},
		{oidSGXType, raw(asn1.Enumerated(0))},
	}
	b, err := asn1.Marshal(exts)
	if err != nil {
		panic(err)
	}
	return b
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
	pck := &x509.Certificate{
		SerialNumber: serial(), Subject: name("MAGE Simulated SGX PCK Certificate"),
		NotBefore: now, NotAfter: now.AddDate(7, 0, 0),
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: []pkix.Extension{{Id: oidSGXExtensions, Value: sgxExtension(st)}},
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
