package dcap

import (
	"crypto/x509"
	_ "embed"
)

//go:embed intel_sgx_root_ca.der
var intelRootDER []byte

// IntelRootCA returns the Intel SGX Root CA certificate, the default trust
// anchor for real quotes. Chains are checked against its public key, so any
// encoding of the same key works as a chain's root.
func IntelRootCA() *x509.Certificate {
	c, err := x509.ParseCertificate(intelRootDER)
	if err != nil {
		panic("dcap: embedded Intel root: " + err.Error())
	}
	return c
}
