// Package cmac implements AES-CMAC (RFC 4493), the MAC SGX uses for REPORT
// and for key derivation. No maintained Go package provides it; this one is
// checked against the RFC's test vectors.
package cmac

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
)

// Size is the length of a CMAC tag.
const Size = 16

// Sum returns the AES-CMAC of msg under key (16, 24 or 32 bytes).
func Sum(key, msg []byte) ([Size]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return [Size]byte{}, err
	}
	return sum(b, msg), nil
}

// Equal compares two tags in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func dbl(in [Size]byte) [Size]byte {
	var out [Size]byte
	carry := in[0] >> 7
	for i := 0; i < Size-1; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[Size-1] = in[Size-1] << 1
	if carry != 0 {
		out[Size-1] ^= 0x87
	}
	return out
}

func sum(b cipher.Block, msg []byte) [Size]byte {
	var l [Size]byte
	b.Encrypt(l[:], l[:])
	k1 := dbl(l)
	k2 := dbl(k1)
	n := (len(msg) + Size - 1) / Size
	complete := n > 0 && len(msg)%Size == 0
	if n == 0 {
		n = 1
	}
	var x [Size]byte
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x[:], x[:], msg[i*Size:(i+1)*Size])
		b.Encrypt(x[:], x[:])
	}
	var last [Size]byte
	rest := msg[(n-1)*Size:]
	if complete {
		subtle.XORBytes(last[:], rest, k1[:])
	} else {
		copy(last[:], rest)
		last[len(rest)] = 0x80
		subtle.XORBytes(last[:], last[:], k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	b.Encrypt(x[:], x[:])
	return x
}
