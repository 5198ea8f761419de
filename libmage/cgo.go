//go:build cgo

package libmage

/*
#cgo CFLAGS: -std=c99 -O2
#include <stdlib.h>
#include "mage.h"
#include "sgx_mage.h"
*/
import "C"

import "unsafe"

// Status is a mage_status value of the C library (0 is MAGE_OK).
type Status int

// The C library's statuses.
const (
	OK         Status = C.MAGE_OK
	ErrNull    Status = C.MAGE_ERR_NULL
	ErrSize    Status = C.MAGE_ERR_SIZE
	ErrCount   Status = C.MAGE_ERR_COUNT
	ErrIndex   Status = C.MAGE_ERR_INDEX
	ErrEntry   Status = C.MAGE_ERR_ENTRY
	ErrPad     Status = C.MAGE_ERR_PADDING
	ErrNone    Status = C.MAGE_ERR_NOT_FOUND
	ErrVer     Status = C.MAGE_ERR_VERSION
	ErrHdr     Status = C.MAGE_ERR_HEADER
	ErrPal     Status = C.MAGE_ERR_LIBPAL
	ErrPalMM   Status = C.MAGE_ERR_LIBPAL_MISMATCH
	ErrBadPal  Status = C.MAGE_ERR_BAD_LIBPAL
	ErrLayout  Status = C.MAGE_ERR_LAYOUT
	ErrMerkle  Status = C.MAGE_ERR_MERKLE
	ErrProof   Status = C.MAGE_ERR_PROOF
	ErrLineage Status = C.MAGE_ERR_LINEAGE
	ErrStale   Status = C.MAGE_ERR_STALE
	ErrVM      Status = C.MAGE_ERR_VM_MEMBER
)

func (s Status) String() string { return C.GoString(C.mage_status_string(C.int(s))) }

func ptr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// Count is mage_count.
func Count(section []byte) (uint64, Status) {
	var n C.uint64_t
	st := C.mage_count(ptr(section), C.size_t(len(section)), &n)
	return uint64(n), Status(st)
}

// Derive is mage_derive.
func Derive(section []byte, idx uint64) ([32]byte, Status) {
	var out [32]byte
	st := C.mage_derive(ptr(section), C.size_t(len(section)), C.uint64_t(idx), (*C.uint8_t)(unsafe.Pointer(&out[0])))
	return out, Status(st)
}

// Find is mage_find.
func Find(section []byte, mr [32]byte) int64 {
	return int64(C.mage_find(ptr(section), C.size_t(len(section)), (*C.uint8_t)(unsafe.Pointer(&mr[0]))))
}

// Trust is mage_trust.
func Trust(section []byte, pinned [32]byte) (uint64, Status) {
	var self C.uint64_t
	st := C.mage_trust(ptr(section), C.size_t(len(section)), (*C.uint8_t)(unsafe.Pointer(&pinned[0])), &self)
	return uint64(self), Status(st)
}

// Libpal is a libpal.so parsed by mage_libpal_parse; it keeps the bytes
// (and the C copy they point into) alive.
type Libpal struct {
	raw *C.uint8_t
	c   C.mage_libpal
}

// ParseLibpal is mage_libpal_parse. Free releases its C copy of the bytes.
func ParseLibpal(b []byte) (*Libpal, Status) {
	p := &Libpal{raw: (*C.uint8_t)(C.CBytes(b))}
	st := Status(C.mage_libpal_parse(p.raw, C.size_t(len(b)), &p.c))
	if st != OK {
		p.Free()
		return nil, st
	}
	return p, OK
}

// Free releases the libpal's C memory.
func (p *Libpal) Free() {
	if p != nil && p.raw != nil {
		C.free(unsafe.Pointer(p.raw))
		p.raw = nil
	}
}

func (p *Libpal) cptr() *C.mage_libpal {
	if p == nil {
		return nil
	}
	return &p.c
}

// DerivePal is mage_derive_pal (pal may be nil).
func DerivePal(section []byte, pal *Libpal, idx uint64) ([32]byte, Status) {
	var out [32]byte
	st := C.mage_derive_pal(ptr(section), C.size_t(len(section)), pal.cptr(), C.uint64_t(idx), (*C.uint8_t)(unsafe.Pointer(&out[0])))
	return out, Status(st)
}

// FindPal is mage_find_pal.
func FindPal(section []byte, pal *Libpal, mr [32]byte) int64 {
	return int64(C.mage_find_pal(ptr(section), C.size_t(len(section)), pal.cptr(), (*C.uint8_t)(unsafe.Pointer(&mr[0]))))
}

// TrustPal is mage_trust_pal.
func TrustPal(section []byte, pal *Libpal, pinned [32]byte) (uint64, Status) {
	var self C.uint64_t
	st := C.mage_trust_pal(ptr(section), C.size_t(len(section)), pal.cptr(), (*C.uint8_t)(unsafe.Pointer(&pinned[0])), &self)
	return uint64(self), Status(st)
}

// MerkleDerive is mage_merkle_derive.
func MerkleDerive(section []byte, pal *Libpal, proof []byte) ([32]byte, uint64, Status) {
	var out [32]byte
	var idx C.uint64_t
	st := C.mage_merkle_derive(ptr(section), C.size_t(len(section)), pal.cptr(), ptr(proof), C.size_t(len(proof)), (*C.uint8_t)(unsafe.Pointer(&out[0])), &idx)
	return out, uint64(idx), Status(st)
}

// Lineage is a mage_lineage in C memory, with C copies of the section and
// the libpal it points into.
type Lineage struct {
	v   *C.mage_lineage
	sec *C.uint8_t
}

// NewLineage is mage_lineage_init. Free releases it (pal must outlive it).
func NewLineage(section []byte, pal *Libpal, own []byte) (*Lineage, [32]byte, uint64, Status) {
	l := &Lineage{v: (*C.mage_lineage)(C.malloc(C.size_t(unsafe.Sizeof(C.mage_lineage{})))), sec: (*C.uint8_t)(C.CBytes(section))}
	var self [32]byte
	var idx C.uint64_t
	cown := C.CBytes(own)
	defer C.free(cown)
	st := Status(C.mage_lineage_init(l.v, l.sec, C.size_t(len(section)), pal.cptr(), (*C.uint8_t)(cown), C.size_t(len(own)),
		(*C.uint8_t)(unsafe.Pointer(&self[0])), &idx))
	return l, self, uint64(idx), st
}

// Free releases the lineage's C memory.
func (l *Lineage) Free() {
	C.free(unsafe.Pointer(l.v))
	C.free(unsafe.Pointer(l.sec))
}

// Known is the number of tables the lineage knows.
func (l *Lineage) Known() uint32 { return uint32(l.v.known) }

// Check is mage_lineage_check.
func (l *Lineage) Check(proof []byte) (mr [32]byte, index uint64, epoch, measured uint32, st Status) {
	var idx C.uint64_t
	var ep, ms C.uint32_t
	st = Status(C.mage_lineage_check(l.v, ptr(proof), C.size_t(len(proof)), (*C.uint8_t)(unsafe.Pointer(&mr[0])), &idx, &ep, &ms))
	return mr, uint64(idx), uint32(ep), uint32(ms), st
}

// Learn is mage_lineage_learn.
func (l *Lineage) Learn(proof []byte) (bool, Status) {
	var learned C.int
	st := Status(C.mage_lineage_learn(l.v, ptr(proof), C.size_t(len(proof)), &learned))
	return learned != 0, st
}

// Ed25519Verify is mage_ed25519_verify.
func Ed25519Verify(pub, msg, sig []byte) bool {
	if len(pub) != 32 || len(sig) != 64 {
		return false
	}
	return C.mage_ed25519_verify(ptr(pub), ptr(msg), C.size_t(len(msg)), ptr(sig)) == 1
}

// SHA512 is mage_sha512.
func SHA512(data []byte) [64]byte {
	var out [64]byte
	C.mage_sha512(ptr(data), C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(&out[0])))
	return out
}

// SHA256 is mage_sha256.
func SHA256(data []byte) [32]byte {
	var out [32]byte
	C.mage_sha256(ptr(data), C.size_t(len(data)), (*C.uint8_t)(unsafe.Pointer(&out[0])))
	return out
}

// SGXGetSize is sgx_mage_get_size over this program's own .sgx_mage
// section (all zeros unless a signer filled it).
func SGXGetSize() uint64 { return uint64(C.sgx_mage_get_size()) }

// SGXDerive is sgx_mage_derive_measurement over this program's section.
func SGXDerive(idx uint64) ([32]byte, int) {
	var mr C.sgx_measurement_t
	st := C.sgx_mage_derive_measurement(C.uint64_t(idx), &mr)
	var out [32]byte
	for i := range out {
		out[i] = byte(mr.m[i])
	}
	return out, int(st)
}

// SGXDeriveNil calls sgx_mage_derive_measurement with a NULL output.
func SGXDeriveNil(idx uint64) int { return int(C.sgx_mage_derive_measurement(C.uint64_t(idx), nil)) }

// Kind returns member idx's kind (mage_kind).
func Kind(section []byte, idx uint64) (uint, Status) {
	var k C.unsigned
	st := Status(C.mage_kind(ptr(section), C.size_t(len(section)), C.uint64_t(idx), &k))
	return uint(k), st
}

// DeriveSNP returns an SNP member's launch digest (mage_derive_snp).
func DeriveSNP(section []byte, idx uint64) ([48]byte, Status) {
	var out [48]byte
	st := Status(C.mage_derive_snp(ptr(section), C.size_t(len(section)), C.uint64_t(idx), (*C.uint8_t)(&out[0])))
	return out, st
}

// DeriveTDX returns a TDX member's MRTD and RTMRs (mage_derive_tdx).
func DeriveTDX(section []byte, idx uint64) (mrtd [48]byte, rtmr [4][48]byte, st Status) {
	st = Status(C.mage_derive_tdx(ptr(section), C.size_t(len(section)), C.uint64_t(idx), (*C.uint8_t)(&mrtd[0]), (*[48]C.uint8_t)(unsafe.Pointer(&rtmr[0]))))
	return mrtd, rtmr, st
}
