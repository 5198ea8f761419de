// Package dcap parses and verifies Intel SGX DCAP ECDSA quotes (version 3
// and 4, TEE type SGX) in pure Go: the quote structure, the PCK certificate
// chain to a root pinned by public key, the QE report and its binding to the
// attestation key, and the quote signature.
//
// Parsing (this file) is separate from cryptographic verification
// (verify.go) and from policy (the caller's, or the attest package's).
package dcap

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/sgx"
)

// Quote format constants.
const (
	HeaderSize        = 48
	AttKeyECDSAP256   = 2
	TEETypeSGX        = 0
	ecdsaSigSize      = 64
	ecdsaPubSize      = 64
	CertPCKChain      = 5 // PEM PCK certificate chain
	CertQEReport      = 6 // QE report certification data (version 4)
	CertPPIDCleartext = 1
	CertPPIDRSA2048   = 2
	CertPPIDRSA3072   = 3
	maxCertDataSize   = 1 << 20
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// ErrFormat is wrapped by every quote parsing error.
var ErrFormat = errors.New("dcap: malformed quote")

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Header is the 48-byte quote header.
type Header struct {
	Version    uint16
	AttKeyType uint16
	TEEType    uint32 // version 4; reserved (0) in version 3
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
}

func (h *Header) marshal() []byte {
	b := make([]byte, HeaderSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], h.Version)
	le.PutUint16(b[2:], h.AttKeyType)
	le.PutUint32(b[4:], h.TEEType)
	le.PutUint16(b[8:], h.QESVN)
	le.PutUint16(b[10:], h.PCESVN)
	copy(b[12:], h.QEVendorID[:])
	copy(b[28:], h.UserData[:])
	return b
}

// CertificationData is the certification data of a quote's signature.
type CertificationData struct {
	Type uint16
	Data []byte // for type 5, the PEM PCK chain
}

// Quote is a parsed SGX ECDSA quote.
type Quote struct {
	Header        Header
	Body          sgx.ReportBody
	Signature     [ecdsaSigSize]byte // ECDSA P-256 r||s over header||body
	AttestKey     [ecdsaPubSize]byte // attestation public key x||y
	QEReport      sgx.ReportBody
	QEReportSig   [ecdsaSigSize]byte // by the PCK key over QEReport
	QEAuthData    []byte
	Certification CertificationData // the PCK certification data (type 1..5)

	raw []byte // the bytes parsed, for signature checks
}

// SignedBytes returns header||body, the bytes the quote signature covers.
func (q *Quote) SignedBytes() []byte {
	if q.raw != nil {
		return q.raw[:HeaderSize+sgx.ReportBodySize]
	}
	return append(q.Header.marshal(), q.Body.Marshal()...)
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if n < 0 || r.off+n > len(r.b) || r.off+n < r.off {
		return nil, formatErr("%s: %d bytes at offset %d, only %d remain", what, n, r.off, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) u16(what string) (uint16, error) {
	b, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (r *reader) u32(what string) (uint32, error) {
	b, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// ParseQuote parses an SGX ECDSA-P256 quote of version 3 or 4 with strict
// length checks: every length field must match the bytes present exactly.
func ParseQuote(b []byte) (*Quote, error) {
	r := &reader{b: b}
	hb, err := r.take(HeaderSize, "header")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	q := &Quote{raw: b}
	h := &q.Header
	h.Version, h.AttKeyType, h.TEEType = le.Uint16(hb[0:]), le.Uint16(hb[2:]), le.Uint32(hb[4:])
	h.QESVN, h.PCESVN = le.Uint16(hb[8:]), le.Uint16(hb[10:])
	copy(h.QEVendorID[:], hb[12:])
	copy(h.UserData[:], hb[28:])
	if h.Version != 3 && h.Version != 4 {
		return nil, formatErr("header.version %d, want 3 or 4", h.Version)
	}
	if h.AttKeyType != AttKeyECDSAP256 {
		return nil, formatErr("header.att_key_type %d, want 2 (ECDSA-256 with P-256)", h.AttKeyType)
	}
	if h.TEEType != TEETypeSGX {
		return nil, formatErr("header.tee_type %#x, want 0 (SGX)", h.TEEType)
	}
	body, err := r.take(sgx.ReportBodySize, "report body")
	if err != nil {
		return nil, err
	}
	rb, _ := sgx.ParseReportBody(body)
	q.Body = *rb
	sigLen, err := r.u32("signature data length")
	if err != nil {
		return nil, err
	}
	if int(sigLen) != len(b)-r.off {
		return nil, formatErr("signature data length %d, but %d bytes follow", sigLen, len(b)-r.off)
	}
	sig, err := r.take(ecdsaSigSize, "quote signature")
	if err != nil {
		return nil, err
	}
	copy(q.Signature[:], sig)
	key, err := r.take(ecdsaPubSize, "attestation key")
	if err != nil {
		return nil, err
	}
	copy(q.AttestKey[:], key)
	if h.Version == 3 {
		if err := q.parseQEData(r, "signature data"); err != nil {
			return nil, err
		}
	} else {
		typ, err := r.u16("certification data type")
		if err != nil {
			return nil, err
		}
		if typ != CertQEReport {
			return nil, formatErr("version 4 certification data type %d, want 6 (QE report)", typ)
		}
		n, err := r.u32("certification data size")
		if err != nil {
			return nil, err
		}
		inner, err := r.take(int(n), "QE report certification data")
		if err != nil {
			return nil, err
		}
		ir := &reader{b: inner}
		if err := q.parseQEData(ir, "QE report certification data"); err != nil {
			return nil, err
		}
		if ir.off != len(inner) {
			return nil, formatErr("QE report certification data: %d trailing bytes", len(inner)-ir.off)
		}
	}
	if r.off != len(b) {
		return nil, formatErr("%d trailing bytes after the certification data", len(b)-r.off)
	}
	return q, nil
}

// parseQEData reads QE report, its signature, the QE authentication data
// and the PCK certification data.
func (q *Quote) parseQEData(r *reader, where string) error {
	rep, err := r.take(sgx.ReportBodySize, where+": QE report")
	if err != nil {
		return err
	}
	qb, _ := sgx.ParseReportBody(rep)
	q.QEReport = *qb
	sig, err := r.take(ecdsaSigSize, where+": QE report signature")
	if err != nil {
		return err
	}
	copy(q.QEReportSig[:], sig)
	n, err := r.u16(where + ": QE authentication data size")
	if err != nil {
		return err
	}
	if q.QEAuthData, err = r.take(int(n), where+": QE authentication data"); err != nil {
		return err
	}
	typ, err := r.u16(where + ": certification data type")
	if err != nil {
		return err
	}
	if typ < CertPPIDCleartext || typ > CertPCKChain {
		return formatErr("%s: certification data type %d, want 1 to 5", where, typ)
	}
	size, err := r.u32(where + ": certification data size")
	if err != nil {
		return err
	}
	if size > maxCertDataSize {
		return formatErr("%s: certification data of %d bytes is too large", where, size)
	}
	data, err := r.take(int(size), where+": certification data")
	if err != nil {
		return err
	}
	q.Certification = CertificationData{Type: typ, Data: data}
	return nil
}

// Marshal encodes the quote as version 3 (QE data in the signature data).
// A parsed version 3 quote marshals to its original bytes.
func (q *Quote) Marshal() ([]byte, error) {
	if q.Header.Version != 3 {
		return nil, fmt.Errorf("dcap: Marshal writes version 3 quotes, header says %d", q.Header.Version)
	}
	if len(q.QEAuthData) > 0xffff {
		return nil, errors.New("dcap: QE authentication data longer than 65535 bytes")
	}
	le := binary.LittleEndian
	sig := make([]byte, 0, 1024+len(q.Certification.Data))
	sig = append(sig, q.Signature[:]...)
	sig = append(sig, q.AttestKey[:]...)
	sig = append(sig, q.QEReport.Marshal()...)
	sig = append(sig, q.QEReportSig[:]...)
	sig = le.AppendUint16(sig, uint16(len(q.QEAuthData)))
	sig = append(sig, q.QEAuthData...)
	sig = le.AppendUint16(sig, q.Certification.Type)
	sig = le.AppendUint32(sig, uint32(len(q.Certification.Data)))
	sig = append(sig, q.Certification.Data...)
	out := append(q.Header.marshal(), q.Body.Marshal()...)
	out = le.AppendUint32(out, uint32(len(sig)))
	return append(out, sig...), nil
}
