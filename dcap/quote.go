// Package dcap parses and verifies Intel SGX DCAP ECDSA quotes (version 3
// and 4, TEE type SGX) in pure Go.
//
// The package keeps three concerns apart, as go-sev-guest and go-tdx-guest
// do:
//
//   - Parsing (ParseQuote, ParseCertificationData, ParseReportBody,
//     ParsePCKExtensions, ParseCollateralBundle, ParseTCBInfo,
//     ParseQEIdentity, ParseCRL, ParseCertChain) decodes bytes strictly and
//     checks nothing cryptographic.
//   - Cryptographic verification of the quote alone (VerifyWithoutCollateral,
//     Quote.VerifySignatures, Verifier): the PCK certificate chain to a root
//     pinned by public key, the QE report signature by the PCK key, the QE
//     report data binding the attestation key, and the quote signature.
//   - Full verification with Intel collateral and a TCB status policy
//     (Verify): CRLs, TCB Info, QE Identity, TCB level, QE identity match.
//
// Quote marshals back to its exact bytes, so a simulated quoting enclave
// can build quotes with the same types (Quote.Marshal, Quote.SignedBytes,
// QEReportData).
//
// Nothing in the package keeps global mutable state; the only shared value
// is the embedded Intel SGX Root CA (IntelRootCA), returned as a fresh copy.
package dcap

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/sgx"
)

// Quote format constants.
const (
	// HeaderSize is the size of the quote header.
	HeaderSize = 48
	// AttKeyECDSAP256 is the attestation key type of ECDSA-256 with P-256.
	AttKeyECDSAP256 = 2
	// TEETypeSGX is the TEE type of SGX quotes (version 4 header; the same
	// bytes are reserved, zero, in version 3).
	TEETypeSGX = 0
	// TEETypeTDX is the TEE type of TDX quotes (TD quotes, ParseTDQuote).
	TEETypeTDX = 0x81
	// TDReportBodySize is the size of a version 4 TD quote's body.
	TDReportBodySize = 584

	ecdsaSigSize    = 64
	ecdsaPubSize    = 64
	maxCertDataSize = 1 << 20
)

// Certification data types (the "Certification Data Type" field).
const (
	CertPPIDCleartext = 1 // PCK identifier: PPID in clear, CPUSVN, PCESVN[, PCE-ID]
	CertPPIDRSA2048   = 2 // PCK identifier: PPID encrypted with RSA-2048-OAEP
	CertPPIDRSA3072   = 3 // PCK identifier: PPID encrypted with RSA-3072-OAEP
	CertPCKLeaf       = 4 // the PCK leaf certificate (PEM)
	CertPCKChain      = 5 // the PCK certificate chain (PEM)
	CertQEReport      = 6 // QE report certification data (version 4)
)

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclaves.
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// ErrFormat is wrapped by every quote and certification data parsing error.
var ErrFormat = errors.New("dcap: malformed quote")

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Header is the 48-byte quote header.
type Header struct {
	Version    uint16   // offset 0: 3 or 4
	AttKeyType uint16   // offset 2: AttKeyECDSAP256
	TEEType    uint32   // offset 4: TEETypeSGX (version 4); reserved, zero (version 3)
	QESVN      uint16   // offset 8
	PCESVN     uint16   // offset 10
	QEVendorID [16]byte // offset 12
	UserData   [20]byte // offset 28: the first 16 bytes are the QE ID for Intel's QE
}

// Marshal encodes the header in its 48-byte layout.
func (h *Header) Marshal() []byte {
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

func (h *Header) marshal() []byte { return h.Marshal() }

// CertificationData is the certification data of a quote's signature: a
// type and opaque data whose meaning depends on the type.
type CertificationData struct {
	Type uint16 // one of the Cert* constants
	Data []byte // for types 4 and 5, PEM certificates
}

// Marshal encodes the certification data as u16 type, u32 size, data.
func (c *CertificationData) Marshal() []byte {
	b := binary.LittleEndian.AppendUint16(nil, c.Type)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Data)))
	return append(b, c.Data...)
}

// PCKIdentifier is the content of certification data types 1 to 3: it
// names the PCK certificate (which the verifier must obtain separately) by
// the platform's PPID and the TCB the PCK signature was made at.
type PCKIdentifier struct {
	// PPID is the platform provisioning ID: 16 bytes in clear (type 1), or
	// encrypted with Intel's RSA-OAEP key, 256 bytes (type 2) or 384 (type 3).
	PPID     []byte
	CPUSVN   [16]byte // the raw CPUSVN the PCK signature was made at
	PCESVN   uint16   // the PCE's ISVSVN
	PCEID    [2]byte  // valid if HasPCEID
	HasPCEID bool     // false for older QE builds, which omit the PCE-ID
}

// ppidSize is the PPID length of certification data types 1 to 3.
func ppidSize(typ uint16) int {
	switch typ {
	case CertPPIDCleartext:
		return 16
	case CertPPIDRSA2048:
		return 256
	case CertPPIDRSA3072:
		return 384
	}
	return -1
}

// PCKIdentifier decodes certification data of type 1, 2 or 3. The size
// must be the PPID's plus 18 (CPUSVN, PCESVN) or 20 (and PCE-ID) bytes.
func (c *CertificationData) PCKIdentifier() (*PCKIdentifier, error) {
	id, err := c.pckIdentifier()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return id, nil
}

func (c *CertificationData) pckIdentifier() (*PCKIdentifier, error) {
	n := ppidSize(c.Type)
	if n < 0 {
		return nil, fmt.Errorf("certification data type %d carries no PCK identifier", c.Type)
	}
	if len(c.Data) != n+18 && len(c.Data) != n+20 {
		return nil, fmt.Errorf("certification data type %d: %d bytes, want %d or %d (PPID, CPUSVN, PCESVN[, PCE-ID])", c.Type, len(c.Data), n+18, n+20)
	}
	id := &PCKIdentifier{PPID: bytes.Clone(c.Data[:n])}
	copy(id.CPUSVN[:], c.Data[n:])
	id.PCESVN = binary.LittleEndian.Uint16(c.Data[n+16:])
	if len(c.Data) == n+20 {
		copy(id.PCEID[:], c.Data[n+18:])
		id.HasPCEID = true
	}
	return id, nil
}

// Certificates decodes the PEM certificates of certification data type 4
// (the PCK leaf) or 5 (the PCK chain).
func (c *CertificationData) Certificates() ([]*x509.Certificate, error) {
	if c.Type != CertPCKLeaf && c.Type != CertPCKChain {
		return nil, fmt.Errorf("%w: certification data type %d carries no certificates; supply the PCK chain", ErrNoPCKChain, c.Type)
	}
	certs, err := ParseCertChain(c.Data)
	if err != nil {
		return nil, err
	}
	if c.Type == CertPCKLeaf && len(certs) != 1 {
		return nil, fmt.Errorf("%w: certification data type 4 holds %d certificates, want the PCK certificate alone", ErrChain, len(certs))
	}
	return certs, nil
}

// Quote is a parsed SGX ECDSA quote. For version 4, the QE report,
// its signature, the QE authentication data and the PCK certification data
// come from the QE report certification data (type 6) and are flattened
// into the same fields as version 3's.
type Quote struct {
	Header        Header             // the 48-byte header
	Body          sgx.ReportBody     // the enclave's report body
	Signature     [ecdsaSigSize]byte // ECDSA P-256 r||s over header||body, by AttestKey
	AttestKey     [ecdsaPubSize]byte // attestation public key x||y
	QEReport      sgx.ReportBody     // the quoting enclave's report body
	QEReportSig   [ecdsaSigSize]byte // ECDSA P-256 r||s over QEReport, by the PCK key
	QEAuthData    []byte             // QE authentication data (at most 65535 bytes)
	Certification CertificationData  // the PCK certification data (type 1 to 5)
	// TD is the TD report body of a TDX quote (ParseTDQuote), which then
	// replaces Body (left zero); nil for an SGX quote.
	TD *TDReportBody
	// tdDescriptor is a version 5 quote's body type and size, which the
	// quote signature covers (nil for version 4).
	tdDescriptor []byte
}

// TDReportBody is the body of a version 4 TD quote (Intel TDX DCAP Quote
// Generation Library and Quote Verification Library, "TD Quote Body"):
// the measurements of the TDX module and of the TD.
type TDReportBody struct {
	TEETCBSVN      [16]byte
	MRSEAM         [48]byte
	MRSignerSEAM   [48]byte
	SEAMAttributes uint64
	TDAttributes   uint64
	XFAM           uint64
	MRTD           [48]byte
	MRConfigID     [48]byte
	MROwner        [48]byte
	MROwnerConfig  [48]byte
	RTMR           [4][48]byte
	ReportData     [64]byte
	// A TDX 1.5 body (version 5 quote, body type 3) adds these.
	TD15        bool
	TEETCBSVN2  [16]byte
	MRServiceTD [48]byte

	raw []byte // the body as parsed: what the quote signature covers
}

// TD report body sizes and version 5 body types.
const (
	tdBody15Size = TDReportBodySize + 16 + 48
	bodyTypeTD10 = 2
	bodyTypeTD15 = 3
)

// parseTDReportBody decodes a TD quote body.
func parseTDReportBody(b []byte) *TDReportBody {
	le := binary.LittleEndian
	t := &TDReportBody{raw: bytes.Clone(b)}
	copy(t.TEETCBSVN[:], b[0:])
	copy(t.MRSEAM[:], b[16:])
	copy(t.MRSignerSEAM[:], b[64:])
	t.SEAMAttributes, t.TDAttributes, t.XFAM = le.Uint64(b[112:]), le.Uint64(b[120:]), le.Uint64(b[128:])
	copy(t.MRTD[:], b[136:])
	copy(t.MRConfigID[:], b[184:])
	copy(t.MROwner[:], b[232:])
	copy(t.MROwnerConfig[:], b[280:])
	for i := range t.RTMR {
		copy(t.RTMR[i][:], b[328+48*i:])
	}
	copy(t.ReportData[:], b[520:])
	if len(b) == tdBody15Size {
		t.TD15 = true
		copy(t.TEETCBSVN2[:], b[584:])
		copy(t.MRServiceTD[:], b[600:])
	}
	return t
}

// Marshal encodes a TD report body: for a parsed one, the bytes parsed.
func (t *TDReportBody) Marshal() []byte {
	if t.raw != nil {
		return bytes.Clone(t.raw)
	}
	le := binary.LittleEndian
	b := make([]byte, 0, TDReportBodySize)
	b = append(append(append(b, t.TEETCBSVN[:]...), t.MRSEAM[:]...), t.MRSignerSEAM[:]...)
	b = le.AppendUint64(le.AppendUint64(le.AppendUint64(b, t.SEAMAttributes), t.TDAttributes), t.XFAM)
	b = append(append(append(append(b, t.MRTD[:]...), t.MRConfigID[:]...), t.MROwner[:]...), t.MROwnerConfig[:]...)
	for _, r := range t.RTMR {
		b = append(b, r[:]...)
	}
	b = append(b, t.ReportData[:]...)
	if t.TD15 {
		b = append(append(b, t.TEETCBSVN2[:]...), t.MRServiceTD[:]...)
	}
	return b
}

// TDAttrDebug is the DEBUG bit of TDATTRIBUTES: the host can read and
// change the TD.
const TDAttrDebug = 1

// SignedBytes returns header||body, the bytes the quote signature covers,
// encoded from the fields (which for a parsed quote are the bytes parsed);
// for a TD quote, header||TD body.
func (q *Quote) SignedBytes() []byte {
	if q.TD != nil {
		return append(append(q.Header.Marshal(), q.tdDescriptor...), q.TD.Marshal()...)
	}
	return append(q.Header.Marshal(), q.Body.Marshal()...)
}

type reader struct {
	b    []byte
	off  int
	base int // offset of b in the whole quote, for error messages
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, formatErr("%s: %d bytes at offset %d, only %d remain", what, n, r.base+r.off, len(r.b)-r.off)
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
// length checks: every length field must match the bytes present exactly,
// with no trailing bytes. It copies b; the Quote does not alias it.
func ParseQuote(b []byte) (*Quote, error) { return parseQuote(b, TEETypeSGX) }

// ParseTDQuote parses an Intel TDX quote (TD quote) of version 4, or of
// version 5 with a TDX 1.0 or 1.5 body, with the checks of ParseQuote: its
// body is a TD report body (Quote.TD). Its
// signatures verify as an SGX quote's do (Quote.VerifySignatures); its
// collateral (TDX TCB Info, the TD QE's identity) is not verified here.
func ParseTDQuote(b []byte) (*Quote, error) { return parseQuote(b, TEETypeTDX) }

func parseQuote(b []byte, tee uint32) (*Quote, error) {
	b = bytes.Clone(b)
	r := &reader{b: b}
	hb, err := r.take(HeaderSize, "header")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	q := &Quote{}
	h := &q.Header
	h.Version, h.AttKeyType, h.TEEType = le.Uint16(hb[0:]), le.Uint16(hb[2:]), le.Uint32(hb[4:])
	h.QESVN, h.PCESVN = le.Uint16(hb[8:]), le.Uint16(hb[10:])
	copy(h.QEVendorID[:], hb[12:])
	copy(h.UserData[:], hb[28:])
	switch {
	case tee == TEETypeTDX && h.Version != 4 && h.Version != 5:
		return nil, formatErr("header.version (offset 0) is %d, want 4 or 5 for a TD quote", h.Version)
	case tee == TEETypeSGX && h.Version != 3 && h.Version != 4:
		return nil, formatErr("header.version (offset 0) is %d, want 3 or 4", h.Version)
	}
	if h.AttKeyType != AttKeyECDSAP256 {
		return nil, formatErr("header.att_key_type (offset 2) is %d, want 2 (ECDSA-256 with P-256)", h.AttKeyType)
	}
	if h.TEEType != tee {
		return nil, formatErr("header.tee_type (offset 4) is %#x, want %#x (%s)", h.TEEType, tee, map[uint32]string{TEETypeSGX: "SGX", TEETypeTDX: "TDX"}[tee])
	}
	if tee == TEETypeTDX {
		size := TDReportBodySize
		if h.Version == 5 {
			d, err := r.take(6, "body descriptor")
			if err != nil {
				return nil, err
			}
			switch typ, n := le.Uint16(d), le.Uint32(d[2:]); {
			case typ == bodyTypeTD10 && n == TDReportBodySize:
			case typ == bodyTypeTD15 && n == tdBody15Size:
				size = tdBody15Size
			default:
				return nil, formatErr("body descriptor (offset 48): type %d of %d bytes, want a TDX 1.0 (2, %d) or 1.5 (3, %d) body", typ, n, TDReportBodySize, tdBody15Size)
			}
			q.tdDescriptor = bytes.Clone(d)
		}
		body, err := r.take(size, "TD report body")
		if err != nil {
			return nil, err
		}
		q.TD = parseTDReportBody(body)
	} else {
		body, err := r.take(sgx.ReportBodySize, "report body")
		if err != nil {
			return nil, err
		}
		rb, err := sgx.ParseReportBody(body)
		if err != nil {
			return nil, formatErr("report body: %v", err)
		}
		q.Body = *rb
	}
	sigLen, err := r.u32("signature data length")
	if err != nil {
		return nil, err
	}
	if uint64(sigLen) != uint64(len(b)-r.off) {
		return nil, formatErr("signature data length (offset %d) is %d, but %d bytes follow", r.off-4, sigLen, len(b)-r.off)
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
		outer, err := parseCertData(r, "signature data")
		if err != nil {
			return nil, err
		}
		if outer.Type != CertQEReport {
			return nil, formatErr("signature data: version 4 certification data type %d, want 6 (QE report certification data)", outer.Type)
		}
		ir := &reader{b: outer.Data, base: r.off - len(outer.Data)}
		if err := q.parseQEData(ir, "QE report certification data"); err != nil {
			return nil, err
		}
		if ir.off != len(ir.b) {
			return nil, formatErr("QE report certification data: %d trailing bytes at offset %d", len(ir.b)-ir.off, ir.base+ir.off)
		}
	}
	if r.off != len(b) {
		return nil, formatErr("%d trailing bytes at offset %d after the certification data", len(b)-r.off, r.off)
	}
	return q, nil
}

// parseCertData reads u16 type, u32 size and exactly size bytes of data.
func parseCertData(r *reader, where string) (CertificationData, error) {
	typ, err := r.u16(where + ": certification data type")
	if err != nil {
		return CertificationData{}, err
	}
	size, err := r.u32(where + ": certification data size")
	if err != nil {
		return CertificationData{}, err
	}
	if size > maxCertDataSize {
		return CertificationData{}, formatErr("%s: certification data size (offset %d) is %d, more than the %d allowed", where, r.base+r.off-4, size, maxCertDataSize)
	}
	data, err := r.take(int(size), where+": certification data")
	if err != nil {
		return CertificationData{}, err
	}
	return CertificationData{Type: typ, Data: data}, nil
}

// parseQEData reads the QE report, its signature, the QE authentication
// data and the PCK certification data (types 1 to 5, with types 1 to 3
// checked for their exact size).
func (q *Quote) parseQEData(r *reader, where string) error {
	rep, err := r.take(sgx.ReportBodySize, where+": QE report")
	if err != nil {
		return err
	}
	qb, err := sgx.ParseReportBody(rep)
	if err != nil {
		return formatErr("%s: QE report: %v", where, err)
	}
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
	start := r.base + r.off
	cd, err := parseCertData(r, where)
	if err != nil {
		return err
	}
	if err := checkPCKCertData(&cd); err != nil {
		return formatErr("%s: certification data at offset %d: %v", where, start, err)
	}
	q.Certification = cd
	return nil
}

// checkPCKCertData accepts the certification data types that identify or
// carry the PCK certificate (1 to 5), with exact sizes for types 1 to 3.
// Its errors do not wrap ErrFormat; callers do.
func checkPCKCertData(cd *CertificationData) error {
	switch cd.Type {
	case CertPPIDCleartext, CertPPIDRSA2048, CertPPIDRSA3072:
		_, err := cd.pckIdentifier()
		return err
	case CertPCKLeaf, CertPCKChain:
		return nil
	}
	return fmt.Errorf("certification data type %d, want 1 to 5", cd.Type)
}

// ParseCertificationData parses one certification data structure (u16
// type, u32 size, data) occupying all of b. Types 1 to 3 are checked for
// their exact size; type 6 (QE report certification data) is checked to
// hold a QE report, its signature, QE authentication data and a nested
// certification data of type 1 to 5, with nothing after it. The PEM of
// types 4 and 5 is not decoded (see CertificationData.Certificates).
func ParseCertificationData(b []byte) (*CertificationData, error) {
	b = bytes.Clone(b)
	r := &reader{b: b}
	cd, err := parseCertData(r, "certification data")
	if err != nil {
		return nil, err
	}
	if r.off != len(b) {
		return nil, formatErr("certification data: %d trailing bytes at offset %d", len(b)-r.off, r.off)
	}
	if cd.Type == CertQEReport {
		var q Quote
		ir := &reader{b: cd.Data, base: 6}
		if err := q.parseQEData(ir, "QE report certification data"); err != nil {
			return nil, err
		}
		if ir.off != len(ir.b) {
			return nil, formatErr("QE report certification data: %d trailing bytes at offset %d", len(ir.b)-ir.off, ir.base+ir.off)
		}
	} else if err := checkPCKCertData(&cd); err != nil {
		return nil, formatErr("%v", err)
	}
	return &cd, nil
}

// qeData encodes the QE report, its signature, the QE authentication data
// and the PCK certification data: version 3's tail of the signature data,
// and version 4's QE report certification data.
func (q *Quote) qeData() ([]byte, error) {
	if len(q.QEAuthData) > 0xffff {
		return nil, fmt.Errorf("dcap: QE authentication data of %d bytes, at most 65535 fit", len(q.QEAuthData))
	}
	if len(q.Certification.Data) > maxCertDataSize {
		return nil, fmt.Errorf("dcap: certification data of %d bytes, at most %d allowed", len(q.Certification.Data), maxCertDataSize)
	}
	b := make([]byte, 0, sgx.ReportBodySize+ecdsaSigSize+8+len(q.QEAuthData)+len(q.Certification.Data))
	b = append(b, q.QEReport.Marshal()...)
	b = append(b, q.QEReportSig[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(q.QEAuthData)))
	b = append(b, q.QEAuthData...)
	return append(b, q.Certification.Marshal()...), nil
}

// Marshal encodes the quote in the layout of its header's version: for
// version 3 the QE data follows the attestation key directly; for version
// 4 it is wrapped in certification data of type 6. A parsed quote marshals
// to exactly the bytes it was parsed from.
//
// To build a quote (as a quoting enclave does), fill Header (Version 3,
// AttKeyType AttKeyECDSAP256), Body, AttestKey, QEReport (whose report data
// is QEReportData(AttestKey, QEAuthData)), QEReportSig (the PCK key's
// signature over QEReport.Marshal()), QEAuthData and Certification (type 5
// with the PEM chain, PCK first), then sign SignedBytes() with the
// attestation key into Signature.
func (q *Quote) Marshal() ([]byte, error) {
	if q.Header.Version != 3 && q.Header.Version != 4 && !(q.Header.Version == 5 && q.TD != nil && q.tdDescriptor != nil) {
		return nil, fmt.Errorf("dcap: Marshal writes version 3 or 4 quotes (and parsed version 5 TD quotes), header says %d", q.Header.Version)
	}
	if err := checkPCKCertData(&q.Certification); err != nil {
		return nil, fmt.Errorf("dcap: Marshal: %v", err)
	}
	qe, err := q.qeData()
	if err != nil {
		return nil, err
	}
	if q.Header.Version >= 4 {
		qe = (&CertificationData{Type: CertQEReport, Data: qe}).Marshal()
	}
	le := binary.LittleEndian
	out := make([]byte, 0, HeaderSize+sgx.ReportBodySize+4+ecdsaSigSize+ecdsaPubSize+len(qe))
	out = append(out, q.SignedBytes()...)
	out = le.AppendUint32(out, uint32(ecdsaSigSize+ecdsaPubSize+len(qe)))
	out = append(out, q.Signature[:]...)
	out = append(out, q.AttestKey[:]...)
	return append(out, qe...), nil
}

// QuoteLength returns the length of the quote at the start of b, as its
// header, body and signature data length give it, without checking the
// rest; for a quote captured in a larger buffer (the TDX quote buffer is
// padded with zeros).
func QuoteLength(b []byte) (int, error) {
	if len(b) < HeaderSize {
		return 0, formatErr("header: %d bytes", len(b))
	}
	le := binary.LittleEndian
	n := HeaderSize
	switch version, tee := le.Uint16(b), le.Uint32(b[4:]); {
	case tee == TEETypeTDX && version == 5:
		if len(b) < n+6 {
			return 0, formatErr("body descriptor: truncated")
		}
		n += 6 + int(le.Uint32(b[n+2:]))
	case tee == TEETypeTDX && version == 4:
		n += TDReportBodySize
	case version == 3 || version == 4:
		n += sgx.ReportBodySize
	default:
		return 0, formatErr("header: version %d, TEE type %#x", version, tee)
	}
	if n < 0 || len(b) < n+4 {
		return 0, formatErr("signature data length: truncated")
	}
	sig := uint64(le.Uint32(b[n:]))
	if uint64(len(b)-n-4) < sig {
		return 0, formatErr("signature data of %d bytes: truncated", sig)
	}
	return n + 4 + int(sig), nil
}
