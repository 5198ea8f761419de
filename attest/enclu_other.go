//go:build !amd64

package attest

import (
	"errors"

	"github.com/magesgx/mage/sgx"
)

func egetkey(*sgx.KeyRequest) ([16]byte, error) {
	return [16]byte{}, errors.New("EGETKEY needs an x86-64 SGX enclave")
}
