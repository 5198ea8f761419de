package sgx

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// Identity is what SGX attests about an enclave: the fields of a REPORT
// body that say which enclave it is. It has one JSON shape, used by every
// tool of this module:
//
//	{"mrenclave": "<hex>", "mrsigner": "<hex>", "isvprodid": 1, "isvsvn": 2,
//	 "attributes": {"flags": "0x0000000000000005", "xfrm": "0x0000000000000003"},
//	 "miscselect": 0}
//
// with "configid", "configsvn", "isvextprodid" and "isvfamilyid" (hex) added
// when not zero (they are set only with KSS).
type Identity struct {
	MRENCLAVE    Measurement
	MRSIGNER     Measurement
	Attributes   Attributes
	MiscSelect   uint32
	ISVProdID    uint16
	ISVSVN       uint16
	ConfigID     [ConfigIDSize]byte
	ConfigSVN    uint16
	ISVExtProdID [16]byte
	ISVFamilyID  [16]byte
}

// Identity returns the identity part of a report body.
func (b *ReportBody) Identity() Identity {
	return Identity{
		MRENCLAVE: b.MRENCLAVE, MRSIGNER: b.MRSIGNER, Attributes: b.Attributes, MiscSelect: b.MiscSelect,
		ISVProdID: b.ISVProdID, ISVSVN: b.ISVSVN, ConfigID: b.ConfigID, ConfigSVN: b.ConfigSVN,
		ISVExtProdID: b.ISVExtProdID, ISVFamilyID: b.ISVFamilyID,
	}
}

// SignedIdentity is the identity a SIGSTRUCT gives an enclave launched
// without DEBUG and KSS: its ENCLAVEHASH, signer, product, version, and
// attributes (with INIT, as after EINIT).
func (s *Sigstruct) SignedIdentity() Identity {
	return Identity{
		MRENCLAVE: Measurement(s.EnclaveHash), MRSIGNER: s.MRSigner(),
		Attributes: Attributes{Flags: s.Attributes.Flags | AttrInit, Xfrm: s.Attributes.Xfrm},
		MiscSelect: s.MiscSelect, ISVProdID: s.ISVProdID, ISVSVN: s.ISVSVN,
		ISVExtProdID: s.ISVExtProdID, ISVFamilyID: s.ISVFamilyID,
	}
}

type identityJSON struct {
	MRENCLAVE    Measurement `json:"mrenclave"`
	MRSIGNER     Measurement `json:"mrsigner"`
	ISVProdID    uint16      `json:"isvprodid"`
	ISVSVN       uint16      `json:"isvsvn"`
	Attributes   Attributes  `json:"attributes"`
	MiscSelect   uint32      `json:"miscselect"`
	ConfigID     string      `json:"configid,omitempty"`
	ConfigSVN    uint16      `json:"configsvn,omitempty"`
	ISVExtProdID string      `json:"isvextprodid,omitempty"`
	ISVFamilyID  string      `json:"isvfamilyid,omitempty"`
}

func hexUnlessZero(b []byte) string {
	for _, c := range b {
		if c != 0 {
			return hex.EncodeToString(b)
		}
	}
	return ""
}

// MarshalJSON encodes the identity in its one JSON shape.
func (id Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(identityJSON{
		MRENCLAVE: id.MRENCLAVE, MRSIGNER: id.MRSIGNER, ISVProdID: id.ISVProdID, ISVSVN: id.ISVSVN,
		Attributes: id.Attributes, MiscSelect: id.MiscSelect, ConfigID: hexUnlessZero(id.ConfigID[:]),
		ConfigSVN: id.ConfigSVN, ISVExtProdID: hexUnlessZero(id.ISVExtProdID[:]), ISVFamilyID: hexUnlessZero(id.ISVFamilyID[:]),
	})
}

// UnmarshalJSON decodes the shape MarshalJSON writes.
func (id *Identity) UnmarshalJSON(b []byte) error {
	var j identityJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	out := Identity{MRENCLAVE: j.MRENCLAVE, MRSIGNER: j.MRSIGNER, ISVProdID: j.ISVProdID, ISVSVN: j.ISVSVN,
		Attributes: j.Attributes, MiscSelect: j.MiscSelect, ConfigSVN: j.ConfigSVN}
	for _, f := range []struct {
		name string
		s    string
		dst  []byte
	}{{"configid", j.ConfigID, out.ConfigID[:]}, {"isvextprodid", j.ISVExtProdID, out.ISVExtProdID[:]}, {"isvfamilyid", j.ISVFamilyID, out.ISVFamilyID[:]}} {
		if f.s == "" {
			continue
		}
		v, err := hex.DecodeString(f.s)
		if err != nil || len(v) != len(f.dst) {
			return fmt.Errorf("sgx: identity: %s: want %d hex bytes", f.name, len(f.dst))
		}
		copy(f.dst, v)
	}
	*id = out
	return nil
}

type attributesJSON struct {
	Flags string `json:"flags"`
	Xfrm  string `json:"xfrm"`
}

// MarshalJSON encodes ATTRIBUTES as {"flags": "0x…", "xfrm": "0x…"}, each
// 16 hex digits (64-bit values do not survive JSON numbers everywhere).
func (a Attributes) MarshalJSON() ([]byte, error) {
	return json.Marshal(attributesJSON{fmt.Sprintf("0x%016x", a.Flags), fmt.Sprintf("0x%016x", a.Xfrm)})
}

// UnmarshalJSON decodes the shape MarshalJSON writes.
func (a *Attributes) UnmarshalJSON(b []byte) error {
	var j attributesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	f, err1 := strconv.ParseUint(j.Flags, 0, 64)
	x, err2 := strconv.ParseUint(j.Xfrm, 0, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("sgx: attributes: flags %q and xfrm %q must be 64-bit hex numbers", j.Flags, j.Xfrm)
	}
	*a = Attributes{Flags: f, Xfrm: x}
	return nil
}
