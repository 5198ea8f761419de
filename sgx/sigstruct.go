package sgx

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// SigstructSize is the size of a SIGSTRUCT in bytes.
const SigstructSize = 1808

// VendorIntel is SIGSTRUCT.VENDOR for enclaves signed by Intel; every other
// signer writes 0.
const VendorIntel = 0x8086

// Fixed SIGSTRUCT header fields required by EINIT.
var (
	SigstructHeader  = [12]byte{0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 0x01, 0}
	SigstructHeader2 = [16]byte{0x01, 0x01, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 0x01, 0, 0, 0}
)

// Sigstruct is the enclave signature structure checked by EINIT. Byte arrays
// holding big numbers (Modulus, Signature, Q1, Q2) are little-endian, as in
// the architectural layout.
type Sigstruct struct {
	Header       [12]byte // offset 0, must equal SigstructHeader
	Type         uint32   // 12: bit 31 set for a debug launch enclave
	ModuleVendor uint32   // 16: 0x8086 for Intel, 0 otherwise
	Date         uint32   // 20: hex digits read yyyymmdd
	Header2      [16]byte // 24: must equal SigstructHeader2
	HWVersion    uint32   // 40
	Reserved1    [84]byte // 44

	Modulus   [384]byte // 128
	Exponent  uint32    // 512
	Signature [384]byte // 516

	MiscSelect    uint32     // 900
	MiscMask      uint32     // 904
	Reserved2     [4]byte    // 908 (CET attributes and mask on newer parts)
	ISVFamilyID   [16]byte   // 912
	Attributes    Attributes // 928
	AttributeMask Attributes // 944
	EnclaveHash   [32]byte   // 960: MRENCLAVE
	Reserved3     [16]byte   // 992
	ISVExtProdID  [16]byte   // 1008
	ISVProdID     uint16     // 1024
	ISVSVN        uint16     // 1026

	Reserved4 [12]byte  // 1028
	Q1        [384]byte // 1040
	Q2        [384]byte // 1424
}

// NewSigstruct returns a SIGSTRUCT with the fixed header fields set.
func NewSigstruct() *Sigstruct {
	return &Sigstruct{Header: SigstructHeader, Header2: SigstructHeader2}
}

// ErrSigstruct is wrapped by every SIGSTRUCT parsing or verification error.
var ErrSigstruct = errors.New("sgx: SIGSTRUCT")

// ParseSigstruct decodes a 1808-byte SIGSTRUCT. It checks only the length;
// Verify checks the content.
func ParseSigstruct(b []byte) (*Sigstruct, error) {
	if len(b) != SigstructSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrSigstruct, len(b), SigstructSize)
	}
	le := binary.LittleEndian
	s := &Sigstruct{}
	copy(s.Header[:], b[0:])
	s.Type = le.Uint32(b[12:])
	s.ModuleVendor = le.Uint32(b[16:])
	s.Date = le.Uint32(b[20:])
	copy(s.Header2[:], b[24:])
	s.HWVersion = le.Uint32(b[40:])
	copy(s.Reserved1[:], b[44:])
	copy(s.Modulus[:], b[128:])
	s.Exponent = le.Uint32(b[512:])
	copy(s.Signature[:], b[516:])
	s.MiscSelect = le.Uint32(b[900:])
	s.MiscMask = le.Uint32(b[904:])
	copy(s.Reserved2[:], b[908:])
	copy(s.ISVFamilyID[:], b[912:])
	s.Attributes = Attributes{le.Uint64(b[928:]), le.Uint64(b[936:])}
	s.AttributeMask = Attributes{le.Uint64(b[944:]), le.Uint64(b[952:])}
	copy(s.EnclaveHash[:], b[960:])
	copy(s.Reserved3[:], b[992:])
	copy(s.ISVExtProdID[:], b[1008:])
	s.ISVProdID = le.Uint16(b[1024:])
	s.ISVSVN = le.Uint16(b[1026:])
	copy(s.Reserved4[:], b[1028:])
	copy(s.Q1[:], b[1040:])
	copy(s.Q2[:], b[1424:])
	return s, nil
}

// Marshal encodes the SIGSTRUCT in its 1808-byte layout.
func (s *Sigstruct) Marshal() []byte {
	b := make([]byte, SigstructSize)
	le := binary.LittleEndian
	copy(b[0:], s.Header[:])
	le.PutUint32(b[12:], s.Type)
	le.PutUint32(b[16:], s.ModuleVendor)
	le.PutUint32(b[20:], s.Date)
	copy(b[24:], s.Header2[:])
	le.PutUint32(b[40:], s.HWVersion)
	copy(b[44:], s.Reserved1[:])
	copy(b[128:], s.Modulus[:])
	le.PutUint32(b[512:], s.Exponent)
	copy(b[516:], s.Signature[:])
	s.putBody(b[900:1028])
	copy(b[1028:], s.Reserved4[:])
	copy(b[1040:], s.Q1[:])
	copy(b[1424:], s.Q2[:])
	return b
}

func (s *Sigstruct) putBody(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], s.MiscSelect)
	le.PutUint32(b[4:], s.MiscMask)
	copy(b[8:], s.Reserved2[:])
	copy(b[12:], s.ISVFamilyID[:])
	le.PutUint64(b[28:], s.Attributes.Flags)
	le.PutUint64(b[36:], s.Attributes.Xfrm)
	le.PutUint64(b[44:], s.AttributeMask.Flags)
	le.PutUint64(b[52:], s.AttributeMask.Xfrm)
	copy(b[60:], s.EnclaveHash[:])
	copy(b[92:], s.Reserved3[:])
	copy(b[108:], s.ISVExtProdID[:])
	le.PutUint16(b[124:], s.ISVProdID)
	le.PutUint16(b[126:], s.ISVSVN)
}

// SigningMaterial returns the 256 bytes covered by the signature: the
// 128-byte header followed by the 128-byte body. This is what the SDK's
// "gendata" writes.
func (s *Sigstruct) SigningMaterial() []byte {
	b := s.Marshal()
	return append(b[0:128:128], b[900:1028]...)
}

// ApplySigningMaterial sets the header and body fields from 256 bytes of
// signing material (the inverse of SigningMaterial), as "catsig" does.
func (s *Sigstruct) ApplySigningMaterial(m []byte) error {
	if len(m) != 256 {
		return fmt.Errorf("%w: signing material of %d bytes, want 256", ErrSigstruct, len(m))
	}
	b := s.Marshal()
	copy(b[0:128], m[:128])
	copy(b[900:1028], m[128:])
	p, _ := ParseSigstruct(b)
	*s = *p
	return nil
}

// MRSigner returns MRSIGNER: the SHA-256 of the little-endian modulus.
func (s *Sigstruct) MRSigner() Measurement {
	return sha256.Sum256(s.Modulus[:])
}

// MRSignerOf returns the MRSIGNER that enclaves signed with pub will have.
func MRSignerOf(pub *rsa.PublicKey) Measurement {
	var s Sigstruct
	return s.withKey(pub).MRSigner()
}

// PublicKey returns the RSA public key stored in the SIGSTRUCT.
func (s *Sigstruct) PublicKey() *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(reversed(s.Modulus[:])), E: int(s.Exponent)}
}

// Sign signs the SIGSTRUCT with key (RSA-3072, e=3): it sets the modulus,
// exponent, signature and the EINIT helper values Q1 and Q2.
func (s *Sigstruct) Sign(key *rsa.PrivateKey) error {
	if err := CheckSigningKey(&key.PublicKey); err != nil {
		return err
	}
	d := sha256.Sum256(s.withKey(&key.PublicKey).SigningMaterial())
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:])
	if err != nil {
		return fmt.Errorf("%w: signing: %v", ErrSigstruct, err)
	}
	return s.SetSignature(&key.PublicKey, sig)
}

func (s *Sigstruct) withKey(pub *rsa.PublicKey) *Sigstruct {
	pub.N.FillBytes(s.Modulus[:])
	slices.Reverse(s.Modulus[:])
	s.Exponent = uint32(pub.E)
	return s
}

// SetSignature installs a big-endian PKCS#1 v1.5 SHA-256 signature made
// elsewhere (for example by an HSM over SigningMaterial) after checking it
// against pub, and computes Q1 and Q2.
func (s *Sigstruct) SetSignature(pub *rsa.PublicKey, sig []byte) error {
	if err := CheckSigningKey(pub); err != nil {
		return err
	}
	if len(sig) != 384 {
		return fmt.Errorf("%w: signature of %d bytes, want 384", ErrSigstruct, len(sig))
	}
	s.withKey(pub)
	d := sha256.Sum256(s.SigningMaterial())
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		return fmt.Errorf("%w: signature does not verify with the given key over the signing material", ErrSigstruct)
	}
	sv := new(big.Int).SetBytes(sig)
	n := pub.N
	// Q1 = floor(S^2 / N); Q2 = floor((S^3 - Q1*S*N) / N).
	s2 := new(big.Int).Mul(sv, sv)
	q1 := new(big.Int).Quo(s2, n)
	s3 := new(big.Int).Mul(s2, sv)
	t := new(big.Int).Mul(q1, sv)
	t.Mul(t, n)
	q2 := s3.Sub(s3, t)
	q2.Quo(q2, n)
	putLE(s.Signature[:], sv)
	putLE(s.Q1[:], q1)
	putLE(s.Q2[:], q2)
	return nil
}

// Verify checks the SIGSTRUCT as EINIT does before looking at the enclave:
// fixed header fields, key size and exponent, the RSA signature over the
// signing material, and Q1/Q2.
func (s *Sigstruct) Verify() error {
	if s.Header != SigstructHeader {
		return fmt.Errorf("%w: header: bad constant % x", ErrSigstruct, s.Header)
	}
	if s.Header2 != SigstructHeader2 {
		return fmt.Errorf("%w: header2: bad constant % x", ErrSigstruct, s.Header2)
	}
	// EINIT (Intel SDM Vol. 3D, SGX Instruction References, EINIT,
	// "Verify SIGSTRUCT Header"): #GP unless VENDOR is 0 or 0x8086 and the
	// reserved fields are zero. Bytes 908-909 carry the CET attributes and
	// mask on processors with CET; 910-911 stay reserved.
	if s.ModuleVendor != 0 && s.ModuleVendor != VendorIntel {
		return fmt.Errorf("%w: VENDOR %#x, want 0 or %#x", ErrSigstruct, s.ModuleVendor, VendorIntel)
	}
	for _, r := range []struct {
		name string
		b    []byte
	}{{"RESERVED1", s.Reserved1[:]}, {"RESERVED2", s.Reserved2[2:]}, {"RESERVED3", s.Reserved3[:]}, {"RESERVED4", s.Reserved4[:]}} {
		if i := slices.IndexFunc(r.b, func(c byte) bool { return c != 0 }); i >= 0 {
			return fmt.Errorf("%w: %s is not zero (byte %d)", ErrSigstruct, r.name, i)
		}
	}
	pub := s.PublicKey()
	if err := CheckSigningKey(pub); err != nil {
		return err
	}
	d := sha256.Sum256(s.SigningMaterial())
	sig := reversed(s.Signature[:])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		return fmt.Errorf("%w: signature: does not verify over header and body", ErrSigstruct)
	}
	chk := *s
	if err := chk.SetSignature(pub, sig); err != nil {
		return err
	}
	if chk.Q1 != s.Q1 || chk.Q2 != s.Q2 {
		return fmt.Errorf("%w: q1/q2: inconsistent with the signature", ErrSigstruct)
	}
	return nil
}

// Equal reports whether two SIGSTRUCTs have identical encodings.
func (s *Sigstruct) Equal(t *Sigstruct) bool { return bytes.Equal(s.Marshal(), t.Marshal()) }

func putLE(dst []byte, v *big.Int) {
	v.FillBytes(dst)
	slices.Reverse(dst)
}

func reversed(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}
