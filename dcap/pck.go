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
)

// PCKExtensions are the SGX values in a PCK certificate's Intel extension
// (OID 1.2.840.113741.1.13.1).
type PCKExtensions struct {
	PPID       []byte
	Components [16]uint8 // SGX TCB component SVNs 1..16
	PCESVN     uint16
	CPUSVN     [16]byte
	PCEID      [2]byte
	FMSPC      [6]byte
	SGXType    int
}

type asnPair struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue
}

// ParsePCKExtensions reads the SGX extension of a PCK certificate.
func ParsePCKExtensions(c *x509.Certificate) (*PCKExtensions, error) {
	var raw []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSGXExtensions) {
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: PCK certificate has no SGX extension", ErrChain)
	}
	bad := func(what string, err error) error {
		return fmt.Errorf("%w: PCK SGX extension: %s: %v", ErrChain, what, err)
	}
	var pairs []asnPair
	if rest, err := asn1.Unmarshal(raw, &pairs); err != nil || len(rest) != 0 {
		return nil, bad("structure", err)
	}
	x := &PCKExtensions{}
	seen := map[string]bool{}
	for _, p := range pairs {
		full := p.Value.FullBytes
		switch {
		case p.ID.Equal(oidPPID):
			if _, err := asn1.Unmarshal(full, &x.PPID); err != nil {
				return nil, bad("PPID", err)
			}
		case p.ID.Equal(oidPCEID):
			var b []byte
			if _, err := asn1.Unmarshal(full, &b); err != nil || len(b) != 2 {
				return nil, bad("PCE-ID", err)
			}
			copy(x.PCEID[:], b)
		case p.ID.Equal(oidFMSPC):
			var b []byte
			if _, err := asn1.Unmarshal(full, &b); err != nil || len(b) != 6 {
				return nil, bad("FMSPC", err)
			}
			copy(x.FMSPC[:], b)
		case p.ID.Equal(oidSGXType):
			var e asn1.Enumerated
			if _, err := asn1.Unmarshal(full, &e); err != nil {
				return nil, bad("SGX type", err)
			}
			x.SGXType = int(e)
		case p.ID.Equal(oidTCB):
			var tcb []asnPair
			if _, err := asn1.Unmarshal(full, &tcb); err != nil {
				return nil, bad("TCB", err)
			}
			for _, t := range tcb {
				if len(t.ID) != len(oidTCB)+1 || !t.ID[:len(oidTCB)].Equal(oidTCB) {
					continue
				}
				n := t.ID[len(oidTCB)]
				switch {
				case n >= 1 && n <= 16:
					var v int
					if _, err := asn1.Unmarshal(t.Value.FullBytes, &v); err != nil || v < 0 || v > 255 {
						return nil, bad(fmt.Sprintf("TCB component %d", n), err)
					}
					x.Components[n-1] = uint8(v)
					seen[fmt.Sprint("comp", n)] = true
				case n == 17:
					var v int
					if _, err := asn1.Unmarshal(t.Value.FullBytes, &v); err != nil || v < 0 || v > 0xffff {
						return nil, bad("PCESVN", err)
					}
					x.PCESVN = uint16(v)
					seen["pcesvn"] = true
				case n == 18:
					var b []byte
					if _, err := asn1.Unmarshal(t.Value.FullBytes, &b); err != nil || len(b) != 16 {
						return nil, bad("CPUSVN", err)
					}
					copy(x.CPUSVN[:], b)
				}
			}
			seen["tcb"] = true
		default:
			continue
		}
		seen[p.ID.String()] = true
	}
	for _, need := range []asn1.ObjectIdentifier{oidFMSPC, oidPCEID} {
		if !seen[need.String()] {
			return nil, fmt.Errorf("%w: PCK SGX extension lacks %v", ErrChain, need)
		}
	}
	if !seen["tcb"] || !seen["pcesvn"] {
		return nil, fmt.Errorf("%w: PCK SGX extension lacks the TCB", ErrChain)
	}
	return x, nil
}

// Marshal encodes the extension value (the inverse of ParsePCKExtensions),
// for issuing PCK certificates, as the simulated platform does.
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
	return asn1.Marshal(pairs)
}

// OIDSGXExtensions is the OID of Intel's SGX extension in PCK certificates.
var OIDSGXExtensions = oidSGXExtensions
