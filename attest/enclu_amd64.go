package attest

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/magesgx/mage/sgx"
)

// enclu executes ENCLU with RAX = leaf, RBX = rbx, RCX = rcx and returns
// RAX (enclu_amd64.s). Outside an enclave the CPU raises #UD: call it only
// inside one.
//
//go:noescape
func enclu(leaf uint64, rbx, rcx unsafe.Pointer) uint64

// egetkey runs ENCLU[EGETKEY] (Intel SDM Vol. 3D, SGX Instruction
// References, EGETKEY: leaf EAX = 1, RBX = the address of a 512-byte
// aligned KEYREQUEST, RCX = the address of a 16-byte aligned 16-byte
// output; on return RAX is 0 or an error code).
func egetkey(req *sgx.KeyRequest) ([16]byte, error) {
	reqBuf := make([]byte, 2*sgx.KeyRequestSize)
	outBuf := make([]byte, 32)
	r := alignedAt(reqBuf, 512)
	o := alignedAt(outBuf, 16)
	copy(r[:sgx.KeyRequestSize], req.Marshal())
	rax := enclu(1, unsafe.Pointer(&r[0]), unsafe.Pointer(&o[0]))
	runtime.KeepAlive(reqBuf)
	runtime.KeepAlive(outBuf)
	var key [16]byte
	if rax != 0 {
		return key, fmt.Errorf("EGETKEY returned %#x", rax)
	}
	copy(key[:], o)
	return key, nil
}

func alignedAt(b []byte, align uintptr) []byte {
	off := (align - uintptr(unsafe.Pointer(&b[0]))%align) % align
	return b[off:]
}
