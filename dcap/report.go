package dcap

import (
	"crypto/sha256"

	"github.com/magesgx/mage/sgx"
)

// ReportBody is the 384-byte SGX report body carried twice in a quote: the
// enclave's (Quote.Body) and the quoting enclave's (Quote.QEReport). It is
// the sgx package's type; its fields are at these offsets:
//
//	  0 CPUSVN        [16]byte
//	 16 MiscSelect    uint32
//	 20 reserved      [12]byte
//	 32 ISVExtProdID  [16]byte
//	 48 Attributes    (flags uint64, xfrm uint64)
//	 64 MRENCLAVE     [32]byte
//	 96 reserved      [32]byte
//	128 MRSIGNER      [32]byte
//	160 reserved      [32]byte
//	192 ConfigID      [64]byte
//	256 ISVProdID     uint16
//	258 ISVSVN        uint16
//	260 ConfigSVN     uint16
//	262 reserved      [42]byte
//	304 ISVFamilyID   [16]byte
//	320 ReportData    [64]byte
//
// Reserved bytes are kept, so Marshal gives back the bytes parsed.
type ReportBody = sgx.ReportBody

// ReportBodySize is the size of an encoded ReportBody.
const ReportBodySize = sgx.ReportBodySize

// ParseReportBody decodes a 384-byte SGX report body; any other length is
// an error. Encode with the body's Marshal method.
func ParseReportBody(b []byte) (*ReportBody, error) {
	return sgx.ParseReportBody(b)
}

// QEReportData returns the report data a quoting enclave puts in its
// report to bind the attestation key: SHA-256(attestKey || authData)
// followed by 32 zero bytes.
func QEReportData(attestKey [64]byte, authData []byte) [64]byte {
	h := sha256.New()
	h.Write(attestKey[:])
	h.Write(authData)
	var out [64]byte
	copy(out[:], h.Sum(nil))
	return out
}
