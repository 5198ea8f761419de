package tdx

import "crypto/sha512"

// VariableDigest is the digest of an EV_EFI_VARIABLE_DRIVER_CONFIG event.
func VariableDigest(guid [16]byte, name string, data []byte) [48]byte {
	return sha512.Sum384(driverConfig(guid, name, data))
}
