package sgx

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the report-related structures.
const (
	ReportBodySize = 384
	ReportSize     = 432
	TargetInfoSize = 512
	KeyRequestSize = 512
	ReportDataSize = 64
	ConfigIDSize   = 64
)

// ReportBody is the 384-byte body of an SGX REPORT (also the enclave
// identity inside a DCAP quote).
type ReportBody struct {
	CPUSVN       [16]byte // 0
	MiscSelect   uint32   // 16
	Reserved1    [12]byte // 20
	ISVExtProdID [16]byte // 32
	Attributes   Attributes
	MRENCLAVE    Measurement        // 64
	Reserved2    [32]byte           // 96
	MRSIGNER     Measurement        // 128
	Reserved3    [32]byte           // 160
	ConfigID     [ConfigIDSize]byte // 192
	ISVProdID    uint16             // 256
	ISVSVN       uint16             // 258
	ConfigSVN    uint16             // 260
	Reserved4    [42]byte           // 262
	ISVFamilyID  [16]byte           // 304
	ReportData   [ReportDataSize]byte
}

// ParseReportBody decodes a 384-byte report body.
func ParseReportBody(b []byte) (*ReportBody, error) {
	if len(b) != ReportBodySize {
		return nil, fmt.Errorf("sgx: report body of %d bytes, want %d", len(b), ReportBodySize)
	}
	le := binary.LittleEndian
	r := &ReportBody{}
	copy(r.CPUSVN[:], b[0:])
	r.MiscSelect = le.Uint32(b[16:])
	copy(r.Reserved1[:], b[20:])
	copy(r.ISVExtProdID[:], b[32:])
	r.Attributes = Attributes{le.Uint64(b[48:]), le.Uint64(b[56:])}
	copy(r.MRENCLAVE[:], b[64:])
	copy(r.Reserved2[:], b[96:])
	copy(r.MRSIGNER[:], b[128:])
	copy(r.Reserved3[:], b[160:])
	copy(r.ConfigID[:], b[192:])
	r.ISVProdID = le.Uint16(b[256:])
	r.ISVSVN = le.Uint16(b[258:])
	r.ConfigSVN = le.Uint16(b[260:])
	copy(r.Reserved4[:], b[262:])
	copy(r.ISVFamilyID[:], b[304:])
	copy(r.ReportData[:], b[320:])
	return r, nil
}

// Marshal encodes the report body in its 384-byte layout.
func (r *ReportBody) Marshal() []byte {
	b := make([]byte, ReportBodySize)
	le := binary.LittleEndian
	copy(b[0:], r.CPUSVN[:])
	le.PutUint32(b[16:], r.MiscSelect)
	copy(b[20:], r.Reserved1[:])
	copy(b[32:], r.ISVExtProdID[:])
	le.PutUint64(b[48:], r.Attributes.Flags)
	le.PutUint64(b[56:], r.Attributes.Xfrm)
	copy(b[64:], r.MRENCLAVE[:])
	copy(b[96:], r.Reserved2[:])
	copy(b[128:], r.MRSIGNER[:])
	copy(b[160:], r.Reserved3[:])
	copy(b[192:], r.ConfigID[:])
	le.PutUint16(b[256:], r.ISVProdID)
	le.PutUint16(b[258:], r.ISVSVN)
	le.PutUint16(b[260:], r.ConfigSVN)
	copy(b[262:], r.Reserved4[:])
	copy(b[304:], r.ISVFamilyID[:])
	copy(b[320:], r.ReportData[:])
	return b
}

// Report is an SGX REPORT: the body, the KEYID used to derive the report
// key, and the AES-CMAC of the body under the target's report key.
type Report struct {
	Body  ReportBody
	KeyID [32]byte
	MAC   [16]byte
}

// ParseReport decodes a 432-byte REPORT.
func ParseReport(b []byte) (*Report, error) {
	if len(b) != ReportSize {
		return nil, fmt.Errorf("sgx: REPORT of %d bytes, want %d", len(b), ReportSize)
	}
	body, _ := ParseReportBody(b[:ReportBodySize])
	r := &Report{Body: *body}
	copy(r.KeyID[:], b[384:])
	copy(r.MAC[:], b[416:])
	return r, nil
}

// Marshal encodes the REPORT in its 432-byte layout.
func (r *Report) Marshal() []byte {
	b := append(r.Body.Marshal(), r.KeyID[:]...)
	return append(b, r.MAC[:]...)
}

// TargetInfo is the 512-byte TARGETINFO naming the enclave a REPORT is for.
type TargetInfo struct {
	MRENCLAVE  Measurement // 0
	Attributes Attributes  // 32
	Reserved1  [2]byte     // 48
	ConfigSVN  uint16      // 50
	MiscSelect uint32      // 52
	Reserved2  [8]byte     // 56
	ConfigID   [ConfigIDSize]byte
	Reserved3  [384]byte // 128
}

// ParseTargetInfo decodes a 512-byte TARGETINFO.
func ParseTargetInfo(b []byte) (*TargetInfo, error) {
	if len(b) != TargetInfoSize {
		return nil, fmt.Errorf("sgx: TARGETINFO of %d bytes, want %d", len(b), TargetInfoSize)
	}
	le := binary.LittleEndian
	t := &TargetInfo{}
	copy(t.MRENCLAVE[:], b[0:])
	t.Attributes = Attributes{le.Uint64(b[32:]), le.Uint64(b[40:])}
	copy(t.Reserved1[:], b[48:])
	t.ConfigSVN = le.Uint16(b[50:])
	t.MiscSelect = le.Uint32(b[52:])
	copy(t.Reserved2[:], b[56:])
	copy(t.ConfigID[:], b[64:])
	copy(t.Reserved3[:], b[128:])
	return t, nil
}

// Marshal encodes the TARGETINFO in its 512-byte layout.
func (t *TargetInfo) Marshal() []byte {
	b := make([]byte, TargetInfoSize)
	le := binary.LittleEndian
	copy(b[0:], t.MRENCLAVE[:])
	le.PutUint64(b[32:], t.Attributes.Flags)
	le.PutUint64(b[40:], t.Attributes.Xfrm)
	copy(b[48:], t.Reserved1[:])
	le.PutUint16(b[50:], t.ConfigSVN)
	le.PutUint32(b[52:], t.MiscSelect)
	copy(b[56:], t.Reserved2[:])
	copy(b[64:], t.ConfigID[:])
	copy(b[128:], t.Reserved3[:])
	return b
}

// Key names for EGETKEY.
const (
	KeyEinitToken    uint16 = 0
	KeyProvision     uint16 = 1
	KeyProvisionSeal uint16 = 2
	KeyReport        uint16 = 3
	KeySeal          uint16 = 4
)

// Key policy bits for EGETKEY.
const (
	KeyPolicyMRENCLAVE    uint16 = 0x01
	KeyPolicyMRSIGNER     uint16 = 0x02
	KeyPolicyNoISVProdID  uint16 = 0x04
	KeyPolicyConfigID     uint16 = 0x08
	KeyPolicyISVFamilyID  uint16 = 0x10
	KeyPolicyISVExtProdID uint16 = 0x20
)

// KeyRequest is the 512-byte KEYREQUEST given to EGETKEY.
type KeyRequest struct {
	KeyName       uint16   // 0
	KeyPolicy     uint16   // 2
	ISVSVN        uint16   // 4
	Reserved1     [2]byte  // 6
	CPUSVN        [16]byte // 8
	AttributeMask Attributes
	KeyID         [32]byte // 40
	MiscMask      uint32   // 72
	ConfigSVN     uint16   // 76
	Reserved2     [434]byte
}

// ParseKeyRequest decodes a 512-byte KEYREQUEST.
func ParseKeyRequest(b []byte) (*KeyRequest, error) {
	if len(b) != KeyRequestSize {
		return nil, fmt.Errorf("sgx: KEYREQUEST of %d bytes, want %d", len(b), KeyRequestSize)
	}
	le := binary.LittleEndian
	k := &KeyRequest{}
	k.KeyName = le.Uint16(b[0:])
	k.KeyPolicy = le.Uint16(b[2:])
	k.ISVSVN = le.Uint16(b[4:])
	copy(k.Reserved1[:], b[6:])
	copy(k.CPUSVN[:], b[8:])
	k.AttributeMask = Attributes{le.Uint64(b[24:]), le.Uint64(b[32:])}
	copy(k.KeyID[:], b[40:])
	k.MiscMask = le.Uint32(b[72:])
	k.ConfigSVN = le.Uint16(b[76:])
	copy(k.Reserved2[:], b[78:])
	return k, nil
}

// Marshal encodes the KEYREQUEST in its 512-byte layout.
func (k *KeyRequest) Marshal() []byte {
	b := make([]byte, KeyRequestSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], k.KeyName)
	le.PutUint16(b[2:], k.KeyPolicy)
	le.PutUint16(b[4:], k.ISVSVN)
	copy(b[6:], k.Reserved1[:])
	copy(b[8:], k.CPUSVN[:])
	le.PutUint64(b[24:], k.AttributeMask.Flags)
	le.PutUint64(b[32:], k.AttributeMask.Xfrm)
	copy(b[40:], k.KeyID[:])
	le.PutUint32(b[72:], k.MiscMask)
	le.PutUint16(b[76:], k.ConfigSVN)
	copy(b[78:], k.Reserved2[:])
	return b
}
