//go:build cgo

package libmage

/*
#cgo CFLAGS: -std=c99 -O2
#include "mage.h"
#include "sgx_mage.h"
*/
import "C"

import "unsafe"

// Status is a mage_status value of the C library (0 is MAGE_OK).
type Status int

// The C library's statuses.
const (
	OK       Status = C.MAGE_OK
	ErrNull  Status = C.MAGE_ERR_NULL
	ErrSize  Status = C.MAGE_ERR_SIZE
	ErrCount Status = C.MAGE_ERR_COUNT
	ErrIndex Status = C.MAGE_ERR_INDEX
	ErrEntry Status = C.MAGE_ERR_ENTRY
	ErrPad   Status = C.MAGE_ERR_PADDING
	ErrNone  Status = C.MAGE_ERR_NOT_FOUND
	ErrVer   Status = C.MAGE_ERR_VERSION
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
