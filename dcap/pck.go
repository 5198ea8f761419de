package dcap

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

var (
	oidSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB           = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCEID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
	oidSGXType       = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 5}
	oidPlatformInst  = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 6}
	oidConfiguration = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 7}
)

// PCKExtensions are the SGX values in a PCK certificate's Intel extension
// (OID 1.2.840.113741.1.13.1, a SEQUENCE of (OID, value) pairs).
type PCKExtensions struct {
	PPID       []byte    // .1: 16 bytes
	Components [16]uint8 // .2.1 to .2.16: SGX TCB component SVNs 1..16
	PCESVN     uint16    // .2.17
	CPUSVN     [16]byte  // .2.18
	PCEID      [2]byte   // .3
	FMSPC      [6]byte   // .4
	SGXType    int       // .5: 0 Standard, 1 Scalable, 2 Scalable with integrity
	// PlatformInstanceID (.6, 16 bytes) and Configuration (.7) appear only
	// in certificates of the PCK Platform CA; nil otherwise.
	PlatformInstanceID []byte
	Configuration      *PCKConfiguration
}

// PCKConfiguration is the platform configuration of a PCK certificate
// issued by the PCK Platform CA (.7.1 to .7.3; an absent value is false).
// The fields are Intel's dynamicPlatform, cachedKeys and smtEnabled.
type PCKConfiguration struct {
	DynamicPlatform bool
	CachedKeys      bool
	SMTEnabled      bool
}

type asnPair struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCKExtensions reads the SGX extension of a PCK certificate. PPID,
// TCB (all 16 components, PCESVN and CPUSVN), PCE-ID, FMSPC and SGX type
// are required; sizes are exact; an OID present twice is refused; unknown
// OIDs are ignored.
func ParsePCKExtensions(c *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSGXExtensions) {
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: PCK certificate has no SGX extension (%v)", ErrChain, oidSGXExtensions)
	}
	return parsePCKExtensionValue(raw)
}

func parsePCKExtensionValue(raw []byte) (*PCKExtensions, error) {
	bad := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%w: PCK SGX extension: %s: %v", ErrChain, what, err)
		}
		return fmt.Errorf("%w: PCK SGX extension: %s", ErrChain, what)
	}
	var pairs []asnPair
	if rest, err := asn1.Unmarshal(raw, &pairs); err != nil || len(rest) != 0 {
		return nil, bad("not a SEQUENCE of (OID, value)", err)
	}
	octets := func(full []byte, what string, n int) ([]byte, error) {
		var b []byte
		rest, err := asn1.Unmarshal(full, &b)
		if err != nil || len(rest) != 0 {
			return nil, bad(what+": want an OCTET STRING", err)
		}
		if n >= 0 && len(b) != n {
			return nil, bad(fmt.Sprintf("%s has %d bytes, want %d", what, len(b), n), nil)
		}
		return b, nil
	}
	integer := func(full []byte, what string, max int) (int, error) {
		var v int
		rest, err := asn1.Unmarshal(full, &v)
		if err != nil || len(rest) != 0 {
			return 0, bad(what+": want an INTEGER", err)
		}
		if v < 0 || v > max {
			return 0, bad(fmt.Sprintf("%s is %d, want 0 to %d", what, v, max), nil)
		}
		return v, nil
	}
	x := &PCKExtensions{}
	seen := map[string]bool{}
	once := func(id asn1.ObjectIdentifier) error {
		k := id.String()
		if seen[k] {
			return bad("OID "+k+" appears twice", nil)
		}
		seen[k] = true
		return nil
	}
	var err error
	for _, p := range pairs {
		full := p.Value.FullBytes
		known := true
		switch {
		case p.ID.Equal(oidPPID):
			x.PPID, err = octets(full, "PPID", 16)
		case p.ID.Equal(oidPCEID):
			var b []byte
			if b, err = octets(full, "PCE-ID", 2); err == nil {
				copy(x.PCEID[:], b)
			}
		case p.ID.Equal(oidFMSPC):
			var b []byte
			if b, err = octets(full, "FMSPC", 6); err == nil {
				copy(x.FMSPC[:], b)
			}
		case p.ID.Equal(oidSGXType):
			var e asn1.Enumerated
			rest, e2 := asn1.Unmarshal(full, &e)
			switch {
			case e2 != nil || len(rest) != 0:
				err = bad("SGX type: want an ENUMERATED", e2)
			case e < 0 || e > 255:
				err = bad(fmt.Sprintf("SGX type %d out of range", e), nil)
			default:
				x.SGXType = int(e)
			}
		case p.ID.Equal(oidPlatformInst):
			x.PlatformInstanceID, err = octets(full, "platform instance ID", 16)
		case p.ID.Equal(oidConfiguration):
			x.Configuration, err = parseConfiguration(full, bad)
		case p.ID.Equal(oidTCB):
			err = parseTCBExtension(x, full, bad, integer, octets)
		default:
			known = false
		}
		if err != nil {
			return nil, err
		}
		if known {
			if err := once(p.ID); err != nil {
				return nil, err
			}
		}
	}
	for _, need := range []struct {
		id   asn1.ObjectIdentifier
		name string
	}{{oidPPID, "PPID"}, {oidTCB, "TCB"}, {oidPCEID, "PCE-ID"}, {oidFMSPC, "FMSPC"}, {oidSGXType, "SGX type"}} {
		if !seen[need.id.String()] {
			return nil, bad(fmt.Sprintf("lacks the %s (%v)", need.name, need.id), nil)
		}
	}
	return x, nil
}

// parseTCBExtension reads the TCB sequence: components 1 to 16, PCESVN
// (17) and CPUSVN (18), each exactly once.
func parseTCBExtension(x *PCKExtensions, full []byte, bad func(string, error) error,
	integer func([]byte, string, int) (int, error), octets func([]byte, string, int) ([]byte, error)) error {
	var tcb []asnPair
	if rest, err := asn1.Unmarshal(full, &tcb); err != nil || len(rest) != 0 {
		return bad("TCB: not a SEQUENCE of (OID, value)", err)
	}
	var have [19]bool
	for _, t := range tcb {
		if len(t.ID) != len(oidTCB)+1 || !t.ID[:len(oidTCB)].Equal(oidTCB) {
			continue
		}
		n := t.ID[len(oidTCB)]
		if n < 1 || n > 18 {
			continue
		}
		if have[n] {
			return bad(fmt.Sprintf("TCB: OID %v appears twice", t.ID), nil)
		}
		have[n] = true
		switch {
		case n <= 16:
			v, err := integer(t.Value.FullBytes, fmt.Sprintf("TCB component %d SVN", n), 0xff)
			if err != nil {
				return err
			}
			x.Components[n-1] = uint8(v)
		case n == 17:
			v, err := integer(t.Value.FullBytes, "PCESVN", 0xffff)
			if err != nil {
				return err
			}
			x.PCESVN = uint16(v)
		case n == 18:
			b, err := octets(t.Value.FullBytes, "CPUSVN", 16)
			if err != nil {
				return err
			}
			copy(x.CPUSVN[:], b)
		}
	}
	for n := 1; n <= 18; n++ {
		if !have[n] {
			return bad(fmt.Sprintf("TCB lacks %v.%d", oidTCB, n), nil)
		}
	}
	return nil
}

// parseConfiguration reads the platform configuration sequence (.7).
func parseConfiguration(full []byte, bad func(string, error) error) (*PCKConfiguration, error) {
	var items []asnPair
	if rest, err := asn1.Unmarshal(full, &items); err != nil || len(rest) != 0 {
		return nil, bad("configuration: not a SEQUENCE of (OID, value)", err)
	}
	c := &PCKConfiguration{}
	var have [4]bool
	for _, it := range items {
		if len(it.ID) != len(oidConfiguration)+1 || !it.ID[:len(oidConfiguration)].Equal(oidConfiguration) {
			continue
		}
		n := it.ID[len(oidConfiguration)]
		if n < 1 || n > 3 {
			continue
		}
		if have[n] {
			return nil, bad(fmt.Sprintf("configuration: OID %v appears twice", it.ID), nil)
		}
		have[n] = true
		var v bool
		if rest, err := asn1.Unmarshal(it.Value.FullBytes, &v); err != nil || len(rest) != 0 {
			return nil, bad(fmt.Sprintf("configuration %v: want a BOOLEAN", it.ID), err)
		}
		switch n {
		case 1:
			c.DynamicPlatform = v
		case 2:
			c.CachedKeys = v
		case 3:
			c.SMTEnabled = v
		}
	}
	return c, nil
}

// Marshal encodes the extension value (the inverse of ParsePCKExtensions),
// for issuing PCK certificates, as the simulated platform does. The PPID
// should have 16 bytes for the result to parse.
func (x *PCKExtensions) Marshal() ([]byte, error) {
	raw := func(v any) (asn1.RawValue, error) {
		b, err := asn1.Marshal(v)
		return asn1.RawValue{FullBytes: b}, err
	}
	sub := func(n int) asn1.ObjectIdentifier {
		return append(append(asn1.ObjectIdentifier{}, oidTCB...), n)
	}
	var tcb []asnPair
	for i, c := range x.Components {
		v, err := raw(int(c))
		if err != nil {
			return nil, err
		}
		tcb = append(tcb, asnPair{sub(i + 1), v})
	}
	pcesvn, err := raw(int(x.PCESVN))
	if err != nil {
		return nil, err
	}
	cpusvn, err := raw(x.CPUSVN[:])
	if err != nil {
		return nil, err
	}
	tcb = append(tcb, asnPair{sub(17), pcesvn}, asnPair{sub(18), cpusvn})
	var pairs []asnPair
	for _, p := range []struct {
		id asn1.ObjectIdentifier
		v  any
	}{{oidPPID, x.PPID}, {oidTCB, tcb}, {oidPCEID, x.PCEID[:]}, {oidFMSPC, x.FMSPC[:]}, {oidSGXType, asn1.Enumerated(x.SGXType)}} {
		v, err := raw(p.v)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, asnPair{p.id, v})
	}
	if x.PlatformInstanceID != nil {
		v, err := raw(x.PlatformInstanceID)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, asnPair{oidPlatformInst, v})
	}
	if c := x.Configuration; c != nil {
		var items []asnPair
		for i, b := range []bool{c.DynamicPlatform, c.CachedKeys, c.SMTEnabled} {
			v, err := raw(b)
			if err != nil {
				return nil, err
			}
			items = append(items, asnPair{append(append(asn1.ObjectIdentifier{}, oidConfiguration...), i+1), v})
		}
		v, err := raw(items)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, asnPair{oidConfiguration, v})
	}
	return asn1.Marshal(pairs)
}

// OIDSGXExtensions is the OID of Intel's SGX extension in PCK certificates
// (a copy: changing it changes nothing in this package).
var OIDSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
