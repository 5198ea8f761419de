// Package sgx holds Intel SGX architectural structures in their binary
// layouts (SIGSTRUCT, ATTRIBUTES, REPORT, TARGETINFO, KEYREQUEST) and the
// enclave signing key rules (RSA-3072, public exponent 3).
//
// All multi-byte integers in SGX structures are little-endian.
package sgx

import (
	"encoding/hex"
	"fmt"
	"time"
)

// ATTRIBUTES.FLAGS bits.
const (
	AttrInit          uint64 = 0x01 // enclave initialised by EINIT
	AttrDebug         uint64 = 0x02 // debug enclave
	AttrMode64Bit     uint64 = 0x04 // 64-bit enclave
	AttrProvisionKey  uint64 = 0x10 // may get the provisioning key
	AttrEinitTokenKey uint64 = 0x20 // may get the EINIT token key
	AttrKSS           uint64 = 0x80 // key separation and sharing
	AttrAEXNotify     uint64 = 0x400
)

// Attributes is the 16-byte SGX ATTRIBUTES structure.
type Attributes struct {
	Flags uint64
	Xfrm  uint64
}

// Debug reports whether the DEBUG flag is set.
func (a Attributes) Debug() bool { return a.Flags&AttrDebug != 0 }

// String formats the attributes as flags/xfrm in hex.
func (a Attributes) String() string { return fmt.Sprintf("flags=%#x xfrm=%#x", a.Flags, a.Xfrm) }

// Measurement is a 32-byte SGX measurement (MRENCLAVE or MRSIGNER).
type Measurement [32]byte

// String returns the measurement in lowercase hex.
func (m Measurement) String() string { return hex.EncodeToString(m[:]) }

// MarshalText encodes the measurement as hex (for JSON).
func (m Measurement) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes a 64-digit hex measurement.
func (m *Measurement) UnmarshalText(b []byte) error {
	p, err := ParseMeasurement(string(b))
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// ParseMeasurement parses a 64-digit hex measurement.
func ParseMeasurement(s string) (Measurement, error) {
	var m Measurement
	if len(s) != 64 {
		return m, fmt.Errorf("sgx: measurement %q: want 64 hex digits, got %d", s, len(s))
	}
	if _, err := hex.Decode(m[:], []byte(s)); err != nil {
		return m, fmt.Errorf("sgx: measurement %q: %w", s, err)
	}
	return m, nil
}

// DateFromTime returns the SIGSTRUCT date for t: a u32 whose hex digits read
// yyyymmdd (2026-11-23 is 0x20261123), taken in UTC.
func DateFromTime(t time.Time) uint32 {
	t = t.UTC()
	return bcd(t.Year()/100)<<24 | bcd(t.Year()%100)<<16 | bcd(int(t.Month()))<<8 | bcd(t.Day())
}

// ParseDate parses a YYYYMMDD string into a SIGSTRUCT date.
func ParseDate(s string) (uint32, error) {
	t, err := time.Parse("20060102", s)
	if err != nil || len(s) != 8 {
		return 0, fmt.Errorf("sgx: date %q: want YYYYMMDD", s)
	}
	return DateFromTime(t), nil
}

func bcd(v int) uint32 { return uint32(v/10)<<4 | uint32(v%10) }
