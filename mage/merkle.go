package mage

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Merkle tables (docs/table-format.md): for groups of any size, a member's
// section holds the versioned header with the Merkle flag and the root of
// a tree over every member's (kind, entry), in member order, instead of
// the entries. Each member keeps a membership proof (its index, kind,
// entry and audit path) and sends it with its evidence; a verifier checks
// the path against the root in its own measured section, then finishes the
// peer's MRENCLAVE over its own section, which is the same in every member.
//
// The tree is RFC 9162's (Certificate Transparency v2, section 2.1):
// leaf = SHA-256(0x00 || kind || 7 zero bytes || 48-byte entry), node =
// SHA-256(0x01 || left || right), and a tree of n leaves splits at the
// largest power of two below n, so an odd count needs no padding.

// FlagMerkle marks a versioned table whose entries are replaced by the
// root of their Merkle tree.
const FlagMerkle = 1

// MaxMerkleMembers bounds a Merkle group (and so the depth of a proof).
const MaxMerkleMembers = 1 << 24

// ErrProof is wrapped when a membership proof does not hold.
var ErrProof = errors.New("mage: membership proof")

func leafHash(k Kind, e Entry) [32]byte {
	b := make([]byte, 1, 1+8+EntrySize)
	b[0] = 0x00
	rec := make([]byte, 8, 8+EntrySize)
	rec[0] = byte(k)
	b = append(b, e.append(rec)...)
	return sha256.Sum256(b)
}

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 0x01
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// split is the largest power of two below n (n >= 2).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// merkleRoot is MTH over the leaves, in O(n).
func merkleRoot(leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	return nodeHash(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
}

// merklePaths returns every leaf's audit path and the root, in O(n log n).
func merklePaths(leaves [][32]byte) ([][][32]byte, [32]byte) {
	paths := make([][][32]byte, len(leaves))
	var rec func(lo, hi int) [32]byte
	rec = func(lo, hi int) [32]byte {
		if hi-lo == 1 {
			return leaves[lo]
		}
		k := lo + split(hi-lo)
		l, r := rec(lo, k), rec(k, hi)
		for i := lo; i < k; i++ {
			paths[i] = append(paths[i], r)
		}
		for i := k; i < hi; i++ {
			paths[i] = append(paths[i], l)
		}
		return nodeHash(l, r)
	}
	root := rec(0, len(leaves))
	return paths, root
}

// verifyPath checks an audit path (RFC 9162, 2.1.3.2).
func verifyPath(index, size uint64, leaf [32]byte, path [][32]byte, root [32]byte) bool {
	if index >= size {
		return false
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range path {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	return sn == 0 && r == root
}

// MembershipProof is what a member of a Merkle group proves its
// membership with: its index, kind and entry, and the audit path from its
// leaf to the root.
type MembershipProof struct {
	Index uint64
	Kind  Kind
	Entry Entry
	Path  [][32]byte
}

// maxDepth is the longest audit path in a tree of n leaves.
func maxDepth(n uint64) int {
	if n <= 1 {
		return 0
	}
	return bits.Len64(n - 1)
}

// Marshal encodes the proof: u64 index, u8 kind, 7 zero bytes, the entry,
// u8 path length, then the path's hashes.
func (p *MembershipProof) Marshal() []byte {
	b := binary.LittleEndian.AppendUint64(nil, p.Index)
	rec := make([]byte, 8, 8+EntrySize)
	rec[0] = byte(p.Kind)
	b = append(b, p.Entry.append(rec)...)
	b = append(b, byte(len(p.Path)))
	for _, h := range p.Path {
		b = append(b, h[:]...)
	}
	return b
}

// ParseMembershipProof decodes a proof; it refuses a path longer than any
// tree of a Merkle group can have.
func ParseMembershipProof(b []byte) (*MembershipProof, error) {
	p, rest, err := parseMembershipProofPrefix(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes for a path of %d hashes", ErrProof, len(b), len(p.Path))
	}
	return p, nil
}

// parseMembershipProofPrefix decodes the proof that starts b and returns
// what follows it.
func parseMembershipProofPrefix(b []byte) (*MembershipProof, []byte, error) {
	const fixed = 8 + 8 + EntrySize + 1
	if len(b) < fixed {
		return nil, nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrProof, len(b), fixed)
	}
	p := &MembershipProof{Index: binary.LittleEndian.Uint64(b), Kind: Kind(b[8])}
	if p.Kind != KindSDK && p.Kind != KindGramine {
		return nil, nil, fmt.Errorf("%w: kind %d", ErrProof, b[8])
	}
	for _, c := range b[9:16] {
		if c != 0 {
			return nil, nil, fmt.Errorf("%w: reserved bytes are not zero", ErrProof)
		}
	}
	e, err := ParseEntry(b[16 : 16+EntrySize])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrProof, err)
	}
	p.Entry = e
	n := int(b[fixed-1])
	if n > maxDepth(MaxMerkleMembers) {
		return nil, nil, fmt.Errorf("%w: a path of %d hashes is longer than any group's tree", ErrProof, n)
	}
	if len(b) < fixed+32*n {
		return nil, nil, fmt.Errorf("%w: %d bytes for a path of %d hashes", ErrProof, len(b), n)
	}
	for i := range n {
		p.Path = append(p.Path, [32]byte(b[fixed+32*i:]))
	}
	return p, b[fixed+32*n:], nil
}
