package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/internal/cmac"
	"github.com/magesgx/mage/sgx"
)

// Errors of EGETKEY and report verification.
var (
	ErrInvalidISVSVN   = errors.New("sim: EGETKEY: requested ISVSVN is above the enclave's")
	ErrInvalidConfigSV = errors.New("sim: EGETKEY: requested CONFIGSVN is above the enclave's")
	ErrInvalidCPUSVN   = errors.New("sim: EGETKEY: requested CPUSVN is above the platform's")
	ErrInvalidKeyName  = errors.New("sim: EGETKEY: invalid key name")
	ErrInvalidAttrs    = errors.New("sim: EGETKEY: the enclave lacks the attribute this key requires")
	ErrReportMAC       = errors.New("sim: REPORT MAC does not verify (not targeted at this enclave, from another platform, or altered)")
	ErrInvalidReserved = errors.New("sim: reserved fields must be zero")
	// ErrInvalidKeyPolicy is the #GP(0) hardware raises for a KEYPOLICY
	// with reserved bits, or with KSS-only bits in an enclave without KSS.
	ErrInvalidKeyPolicy = errors.New("sim: EGETKEY: invalid KEYPOLICY (#GP)")
)

// KEYPOLICY bits (Intel SDM Vol. 3D, 38.17 KEY REQUEST (KEYREQUEST), Table
// 38-24): 15:6 are reserved; NOISVPRODID, CONFIGID, ISVFAMILYID and
// ISVEXTPRODID exist only with Key Separation and Sharing.
const (
	keyPolicyReserved uint16 = 0xffc0
	keyPolicyKSSOnly         = sgx.KeyPolicyNoISVProdID | sgx.KeyPolicyConfigID | sgx.KeyPolicyISVFamilyID | sgx.KeyPolicyISVExtProdID
)

// deriveKey is the simulated key derivation: AES-CMAC, keyed by a key
// derived from the platform's root secret, over the serialised key
// dependencies (what SGX's derivation string holds: key name, policy-chosen
// identity, SVNs, masked attributes, KEYID, owner epoch, ...).
func (p *Platform) deriveKey(deps []byte) [16]byte {
	k, _ := cmac.Sum(p.state.RootSecret[:16], append([]byte("MAGE-SIM-KDF"), p.state.RootSecret[16:]...))
	out, _ := cmac.Sum(k[:], deps)
	return out
}

type depWriter struct{ bytes.Buffer }

func (w *depWriter) u16(v uint16)          { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *depWriter) u32(v uint32)          { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *depWriter) u64(v uint64)          { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *depWriter) raw(b []byte)          { w.Write(b) }
func (w *depWriter) attr(a sgx.Attributes) { w.u64(a.Flags); w.u64(a.Xfrm) }

// reportKey derives the report key of the enclave described by ti, for the
// given KEYID (EGETKEY REPORT, or EREPORT's MAC key for that target).
func (p *Platform) reportKey(ti *sgx.TargetInfo, keyID [32]byte) [16]byte {
	var w depWriter
	w.u16(sgx.KeyReport)
	w.raw(ti.MRENCLAVE[:])
	w.attr(ti.Attributes)
	w.u32(ti.MiscSelect)
	w.raw(ti.ConfigID[:])
	w.u16(ti.ConfigSVN)
	w.raw(p.state.OwnerEpoch)
	w.raw(p.state.CPUSVN)
	w.raw(keyID[:])
	return p.deriveKey(w.Bytes())
}

func cpusvnAbove(req, plat []byte) bool {
	for i := range req {
		if req[i] > plat[i] {
			return true
		}
	}
	return false
}

// getKey implements EGETKEY for enclave e.
func (p *Platform) getKey(e *Enclave, req *sgx.KeyRequest) ([16]byte, error) {
	var zero [16]byte
	if req.Reserved1 != [2]byte{} || req.Reserved2 != [434]byte{} {
		return zero, fmt.Errorf("%w: KEYREQUEST", ErrInvalidReserved)
	}
	id := e.Identity
	// SDM, EGETKEY (Operation), before the key name is looked at:
	// IF (KEYPOLICY.RESERVED != 0) or (SECS.ATTRIBUTES.KSS = 0 and
	// (KEYPOLICY.NOISVPRODID | CONFIGID | ISVFAMILYID | ISVEXTPRODID) != 0)
	// THEN #GP(0).
	if req.KeyPolicy&keyPolicyReserved != 0 {
		return zero, fmt.Errorf("%w: reserved bits %#x", ErrInvalidKeyPolicy, req.KeyPolicy&keyPolicyReserved)
	}
	if id.Attributes.Flags&sgx.AttrKSS == 0 && req.KeyPolicy&keyPolicyKSSOnly != 0 {
		return zero, fmt.Errorf("%w: bits %#x need KSS, which the enclave does not have", ErrInvalidKeyPolicy, req.KeyPolicy&keyPolicyKSSOnly)
	}
	switch req.KeyName {
	case sgx.KeyReport:
		ti := e.TargetInfo()
		return p.reportKey(ti, req.KeyID), nil
	case sgx.KeySeal, sgx.KeyProvision, sgx.KeyProvisionSeal, sgx.KeyEinitToken:
	default:
		return zero, fmt.Errorf("%w: %d", ErrInvalidKeyName, req.KeyName)
	}
	if req.KeyName == sgx.KeyProvision || req.KeyName == sgx.KeyProvisionSeal {
		if id.Attributes.Flags&sgx.AttrProvisionKey == 0 {
			return zero, fmt.Errorf("%w: PROVISIONKEY", ErrInvalidAttrs)
		}
	}
	if req.KeyName == sgx.KeyEinitToken && id.Attributes.Flags&sgx.AttrEinitTokenKey == 0 {
		return zero, fmt.Errorf("%w: EINITTOKENKEY", ErrInvalidAttrs)
	}
	// Intel SDM Vol. 3D, SGX Instruction References, EGETKEY (Operation):
	// a key for an ISVSVN or CONFIGSVN above the enclave's is refused
	// (SGX_INVALID_ISVSVN), as is a CPUSVN above the platform's.
	if req.ISVSVN > id.ISVSVN {
		return zero, fmt.Errorf("%w (%d > %d)", ErrInvalidISVSVN, req.ISVSVN, id.ISVSVN)
	}
	if req.ConfigSVN > id.ConfigSVN {
		return zero, fmt.Errorf("%w (%d > %d)", ErrInvalidConfigSV, req.ConfigSVN, id.ConfigSVN)
	}
	if cpusvnAbove(req.CPUSVN[:], p.state.CPUSVN) {
		return zero, ErrInvalidCPUSVN
	}
	var w depWriter
	w.u16(req.KeyName)
	w.u16(req.KeyPolicy)
	if req.KeyPolicy&sgx.KeyPolicyMRENCLAVE != 0 {
		w.raw(id.MRENCLAVE[:])
	} else {
		w.raw(make([]byte, 32))
	}
	if req.KeyPolicy&sgx.KeyPolicyMRSIGNER != 0 || req.KeyName != sgx.KeySeal {
		w.raw(id.MRSIGNER[:])
	} else {
		w.raw(make([]byte, 32))
	}
	if req.KeyPolicy&sgx.KeyPolicyNoISVProdID == 0 {
		w.u16(id.ISVProdID)
	}
	if req.KeyPolicy&sgx.KeyPolicyConfigID != 0 {
		w.raw(id.ConfigID[:])
	}
	if req.KeyPolicy&sgx.KeyPolicyISVFamilyID != 0 {
		w.raw(id.ISVFamilyID[:])
	}
	if req.KeyPolicy&sgx.KeyPolicyISVExtProdID != 0 {
		w.raw(id.ISVExtProdID[:])
	}
	w.u16(req.ISVSVN)
	w.u16(req.ConfigSVN)
	w.raw(req.CPUSVN[:])
	// EGETKEY always includes INIT and DEBUG in the attributes a key
	// depends on, whatever the request's mask (SDM, EGETKEY Operation:
	// TMP_ATTRIBUTES := (ATTRIBUTEMASK | 0x3) & SECS.ATTRIBUTES): a DEBUG
	// enclave never gets a production enclave's keys.
	mask := req.AttributeMask.Flags | sgx.AttrInit | sgx.AttrDebug
	w.attr(sgx.Attributes{Flags: id.Attributes.Flags & mask, Xfrm: id.Attributes.Xfrm & req.AttributeMask.Xfrm})
	w.u32(id.MiscSelect & req.MiscMask)
	w.raw(p.state.OwnerEpoch)
	w.raw(req.KeyID[:])
	return p.deriveKey(w.Bytes()), nil
}
