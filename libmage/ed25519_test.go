//go:build cgo

package libmage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"
)

// RFC 8032, section 7.1: tests 1, 2, 3 and SHA(abc).
var rfc8032 = []struct{ secret, public, msg, sig string }{
	{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
		"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
	{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
		"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	{"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
		"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	{"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42", "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
		"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
		"dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEd25519RFC8032: the RFC's vectors verify in C (and in Go, which
// checks the vectors themselves), and fail with any bit flipped.
func TestEd25519RFC8032(t *testing.T) {
	for i, v := range rfc8032 {
		key := ed25519.NewKeyFromSeed(unhex(t, v.secret))
		pub, msg, sig := unhex(t, v.public), unhex(t, v.msg), unhex(t, v.sig)
		if !bytes.Equal(key.Public().(ed25519.PublicKey), pub) || !bytes.Equal(ed25519.Sign(key, msg), sig) {
			t.Fatalf("vector %d does not match Go's Ed25519: the vector is mistyped", i)
		}
		if !Ed25519Verify(pub, msg, sig) {
			t.Errorf("vector %d: C refuses the RFC's signature", i)
		}
		for _, bit := range []int{0, 7, 255, 256, 300, 511} {
			bad := bytes.Clone(sig)
			bad[bit/8] ^= 1 << (bit % 8)
			if Ed25519Verify(pub, msg, bad) != ed25519.Verify(pub, msg, bad) {
				t.Errorf("vector %d, signature bit %d flipped: C %t, Go %t", i, bit, Ed25519Verify(pub, msg, bad), ed25519.Verify(pub, msg, bad))
			}
		}
	}
}

func TestSHA512(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if SHA512(b) != sha512.Sum512(b) {
			t.Fatalf("SHA-512 of %d bytes differs", n)
		}
	}
}

// edgePoints are encodings Go's decoder treats specially: small-order
// points, non-canonical y (y >= p), x = 0 with the sign bit, and
// non-points.
func edgePoints(t testing.TB) [][]byte {
	var out [][]byte
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"0100000000000000000000000000000000000000000000000000000000000080", // identity, sign set (x = 0)
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = -1 (order 2)
		"0000000000000000000000000000000000000000000000000000000000000000", // y = 0 (order 4)
		"0000000000000000000000000000000000000000000000000000000000000080",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p (non-canonical 0)
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1 (non-canonical 1)
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0200000000000000000000000000000000000000000000000000000000000000", // not on the curve
	} {
		out = append(out, unhex(t, h))
	}
	return out
}

// TestEd25519LikeGo: on signatures of random keys and messages, mutated,
// and on keys and R values that are small-order, non-canonical or off the
// curve, C decides as Go's crypto/ed25519 does.
func TestEd25519LikeGo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(name string, pub, msg, sig []byte) {
		t.Helper()
		if c, g := Ed25519Verify(pub, msg, sig), ed25519.Verify(pub, msg, sig); c != g {
			t.Errorf("%s: C %t, Go %t (pub %x sig %x)", name, c, g, pub, sig)
		}
	}
	for i := range 60 {
		seed := make([]byte, 32)
		for j := range seed {
			seed[j] = byte(r.Uint32())
		}
		key := ed25519.NewKeyFromSeed(seed)
		pub := key.Public().(ed25519.PublicKey)
		msg := make([]byte, r.IntN(200))
		for j := range msg {
			msg[j] = byte(r.Uint32())
		}
		sig := ed25519.Sign(key, msg)
		check("valid", pub, msg, sig)
		if !Ed25519Verify(pub, msg, sig) {
			t.Fatalf("key %d: C refuses a valid signature", i)
		}
		// S + L: the same scalar, not canonical.
		big := bytes.Clone(sig)
		carry := 0
		for j := range 32 {
			v := int(big[32+j]) + int(edL[j]) + carry
			big[32+j], carry = byte(v), v>>8
		}
		check("S+L", pub, msg, big)
		bad := bytes.Clone(sig)
		bad[r.IntN(64)] ^= byte(1 << r.IntN(8))
		check("flipped", pub, msg, bad)
		for _, p := range edgePoints(t) {
			check("edge key", p, msg, sig)
			s2 := bytes.Clone(sig)
			copy(s2, p)
			check("edge R", pub, msg, s2)
		}
	}
	// A small-order key with R the identity and S = 0 verifies in Go
	// (no small-order check); C must agree.
	for _, p := range edgePoints(t) {
		sig := append(unhex(t, "0100000000000000000000000000000000000000000000000000000000000000"), make([]byte, 32)...)
		check("small-order key, identity R, S = 0", p, []byte("m"), sig)
	}
}

var edL = []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}

// FuzzEd25519 compares mage_ed25519_verify with Go's Verify on any key,
// message and signature, seeded with valid signatures.
func FuzzEd25519(f *testing.F) {
	for _, v := range rfc8032 {
		f.Add(unhex(f, v.public), unhex(f, v.msg), unhex(f, v.sig))
	}
	for _, p := range edgePoints(f) {
		f.Add(p, []byte("m"), append(unhex(f, "0100000000000000000000000000000000000000000000000000000000000000"), make([]byte, 32)...))
	}
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != 32 || len(sig) != 64 {
			return
		}
		if c, g := Ed25519Verify(pub, msg, sig), ed25519.Verify(pub, msg, sig); c != g {
			t.Fatalf("C %t, Go %t", c, g)
		}
	})
}

func BenchmarkEd25519Verify(b *testing.B) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := []byte("MAGE successor statement v1\x00 and 68 more bytes of hashes and epoch...........................")
	sig := ed25519.Sign(key, msg)
	pub := key.Public().(ed25519.PublicKey)
	b.Run("C", func(b *testing.B) {
		for b.Loop() {
			Ed25519Verify(pub, msg, sig)
		}
	})
	b.Run("Go", func(b *testing.B) {
		for b.Loop() {
			ed25519.Verify(pub, msg, sig)
		}
	})
}

// TestEd25519Wycheproof: on Wycheproof's 151 Ed25519 vectors, C decides
// as Go's crypto/ed25519, and both as Wycheproof expects ("acceptable"
// vectors may go either way, but C and Go must agree).
func TestEd25519Wycheproof(t *testing.T) {
	raw, err := os.ReadFile("testdata/wycheproof/ed25519_test.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		TestGroups []struct {
			PublicKey struct{ Pk string }
			Tests     []struct {
				TcID    int
				Comment string
				Msg     string
				Sig     string
				Result  string
			}
		}
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range file.TestGroups {
		pub := unhex(t, g.PublicKey.Pk)
		for _, tc := range g.Tests {
			msg, sig := unhex(t, tc.Msg), unhex(t, tc.Sig)
			c := Ed25519Verify(pub, msg, sig)
			gv := len(pub) == 32 && ed25519.Verify(pub, msg, sig)
			if c != gv {
				t.Errorf("test %d (%s): C %t, Go %t", tc.TcID, tc.Comment, c, gv)
			}
			if (tc.Result == "valid" && !c) || (tc.Result == "invalid" && c) {
				t.Errorf("test %d (%s): C %t, Wycheproof says %s", tc.TcID, tc.Comment, c, tc.Result)
			}
			n++
		}
	}
	if n != 151 {
		t.Errorf("%d vectors, want 151", n)
	}
}
