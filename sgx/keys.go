package sgx

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// Enclave signing keys are RSA-3072 with public exponent 3, as EINIT requires.
const (
	SigningKeyBits     = 3072
	SigningKeyExponent = 3
)

// ErrKey is wrapped by every signing-key error.
var ErrKey = errors.New("sgx: signing key")

// CheckSigningKey reports whether pub is usable for SIGSTRUCT: RSA-3072 with
// public exponent 3.
func CheckSigningKey(pub *rsa.PublicKey) error {
	if pub == nil || pub.N == nil {
		return fmt.Errorf("%w: no key", ErrKey)
	}
	if n := pub.N.BitLen(); n != SigningKeyBits {
		return fmt.Errorf("%w: modulus is %d bits, SGX requires %d", ErrKey, n, SigningKeyBits)
	}
	if pub.E != SigningKeyExponent {
		return fmt.Errorf("%w: public exponent is %d, SGX requires %d", ErrKey, pub.E, SigningKeyExponent)
	}
	return nil
}

// LoadSigningKey parses a PEM private key (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
// "PRIVATE KEY") and checks that it is an SGX signing key.
func LoadSigningKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrKey)
	}
	var key *rsa.PrivateKey
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1: %v", ErrKey, err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8: %v", ErrKey, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: PKCS#8 key is %T, want RSA", ErrKey, k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("%w: PEM block %q, want \"RSA PRIVATE KEY\" or \"PRIVATE KEY\"", ErrKey, blk.Type)
	}
	if err := CheckSigningKey(&key.PublicKey); err != nil {
		return nil, err
	}
	return key, nil
}

// LoadPublicKey parses a PEM public key (PKIX "PUBLIC KEY" or PKCS#1 "RSA
// PUBLIC KEY") and checks that it is an SGX signing key.
func LoadPublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, fmt.Errorf("%w: no PEM block found", ErrKey)
	}
	var pub *rsa.PublicKey
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKIX: %v", ErrKey, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: public key is %T, want RSA", ErrKey, k)
		}
		pub = rk
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1: %v", ErrKey, err)
		}
		pub = k
	default:
		return nil, fmt.Errorf("%w: PEM block %q, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", ErrKey, blk.Type)
	}
	if err := CheckSigningKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// GenerateSigningKey makes a new RSA-3072 key with public exponent 3. The
// standard library's rsa.GenerateKey always uses 65537, so the primes come
// from crypto/rand.Prime and the key is checked with Validate.
func GenerateSigningKey() (*rsa.PrivateKey, error) {
	e := big.NewInt(SigningKeyExponent)
	one := big.NewInt(1)
	for {
		p, err := primeCoprimeTo3(SigningKeyBits / 2)
		if err != nil {
			return nil, err
		}
		q, err := primeCoprimeTo3(SigningKeyBits / 2)
		if err != nil {
			return nil, err
		}
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != SigningKeyBits {
			continue
		}
		pm := new(big.Int).Sub(p, one)
		qm := new(big.Int).Sub(q, one)
		phi := new(big.Int).Mul(pm, qm)
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		key := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: n, E: SigningKeyExponent},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		key.Precompute()
		if err := key.Validate(); err != nil {
			return nil, fmt.Errorf("%w: generated key invalid: %v", ErrKey, err)
		}
		return key, nil
	}
}

// primeCoprimeTo3 returns a prime p of the given size with gcd(3, p-1) = 1,
// that is p ≡ 2 (mod 3).
func primeCoprimeTo3(bits int) (*big.Int, error) {
	three := big.NewInt(3)
	m := new(big.Int)
	for {
		p, err := rand.Prime(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("%w: generating prime: %v", ErrKey, err)
		}
		if m.Mod(p, three).Int64() == 2 {
			return p, nil
		}
	}
}

// MarshalSigningKey encodes a private key as PKCS#1 PEM ("RSA PRIVATE KEY"),
// the form the SGX SDK's own tools write.
func MarshalSigningKey(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// MarshalPublicKey encodes a public key as PKIX PEM ("PUBLIC KEY").
func MarshalPublicKey(pub *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // cannot fail for an RSA key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
