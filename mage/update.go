package mage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/magesgx/mage/sgx"
)

// Updates (docs/table-format.md, "Updatable groups"). A Merkle table may
// commit to an update key. Its holder may sign a successor: a table that
// reuses the unchanged members' entries (an entry does not depend on the
// table), adds new or updated members, drops others, and records the hash
// of its predecessor's table and its epoch. The update key signs the
// successor statement (hash of the predecessor, hash of the successor,
// epoch). The tables from epoch 0 to the newest, and the statements
// between them, are the group's lineage.
//
// Members of different epochs accept each other:
//   - a newer member checks an older one's table by hash: its own measured
//     table commits to its predecessor's hash, which commits to the one
//     before, down to epoch 0;
//   - an older member checks a newer one's table by the statements, the
//     first signed by the key committed in its own measured table, each
//     next by the key committed in the table before it.
//
// Either way the verifier knows the newest table its peer knows (and keeps
// the newest it has seen), checks the peer's membership proof against that
// table's root, and finishes the peer's MRENCLAVE over the table the peer
// measured. A member dropped by a successor has no proof in it, so every
// member that knows the successor refuses it.

// FlagUpdateKey marks a Merkle table that commits to an update key: the
// root is followed by the key and the predecessor's hash, and the header
// holds the epoch.
const FlagUpdateKey = 2

// MaxEpoch bounds a lineage: at most MaxEpoch successors follow the first
// table, so that a member's lineage proof fits in one handshake message.
const MaxEpoch = 255

const (
	updatableTableSize = v2HeaderSize + 32 + 64
	statementSize      = ed25519.SignatureSize
	statementContext   = "MAGE successor statement v1\x00"
	lineageProofTag    = "MAGElin\x02"
	lineageTag         = "MAGElng\x01"
)

// Errors of lineages.
var (
	ErrLineage = errors.New("mage: group lineage")
	// ErrStale is wrapped when a peer's lineage stops before the newest
	// table the verifier knows: the peer's host has not been given its
	// proof in the newer table, or the peer was dropped from it.
	ErrStale = errors.New("mage: the peer does not know the group's newest table")
)

// Hash returns the SHA-256 of the encoded table (the payload, without an
// SDK section's padding): what a successor records as its predecessor.
func (t *VersionedTable) Hash() [32]byte { return sha256.Sum256(t.Marshal()) }

// SuccessorStatement returns the message an update key signs to make the
// table whose hash is next the successor, at epoch, of the table whose
// hash is prev: a context string, prev, next and the u32 epoch.
func SuccessorStatement(prev, next [32]byte, epoch uint32) []byte {
	b := make([]byte, 0, len(statementContext)+68)
	b = append(b, statementContext...)
	b = append(b, prev[:]...)
	b = append(b, next[:]...)
	return binary.LittleEndian.AppendUint32(b, epoch)
}

// sameConstants reports whether two tables of a lineage describe members
// built the same way: a member's entry only carries over to a successor
// whose section, or table line, has the same size and runtime.
func sameConstants(a, b *VersionedTable) bool {
	return a.SDKSectionSize == b.SDKSectionSize && a.MaxThreads == b.MaxThreads && a.EDMM == b.EDMM &&
		a.Layout == b.Layout && a.LibpalSHA256 == b.LibpalSHA256
}

// NewUpdatableTable returns the first table (epoch 0) of an updatable
// Merkle group committed to key, and every member's membership proof.
func NewUpdatableTable(kinds []Kind, entries []Entry, key ed25519.PublicKey) (*VersionedTable, []*MembershipProof, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%w: update key of %d bytes, want an Ed25519 public key", ErrLineage, len(key))
	}
	t, proofs, err := NewMerkleTable(kinds, entries)
	if err != nil {
		return nil, nil, err
	}
	t.Updatable, t.UpdateKey = true, [32]byte(key)
	return t, proofs, nil
}

// NewSuccessorTable returns the successor of prev over members (their
// kinds and entries, in member order), committed to nextKey, and every
// member's membership proof in it. It keeps prev's constants (section
// size, Gramine runtime).
func NewSuccessorTable(prev *VersionedTable, kinds []Kind, entries []Entry, nextKey ed25519.PublicKey) (*VersionedTable, []*MembershipProof, error) {
	switch {
	case !prev.Updatable:
		return nil, nil, fmt.Errorf("%w: the predecessor commits to no update key: it can have no successor", ErrLineage)
	case prev.UpdateKey == [32]byte{}:
		return nil, nil, fmt.Errorf("%w: the predecessor's update key is all zeros: the group is final", ErrLineage)
	case prev.Epoch >= MaxEpoch:
		return nil, nil, fmt.Errorf("%w: the predecessor is at epoch %d, the last a lineage may have", ErrLineage, prev.Epoch)
	}
	t, proofs, err := NewUpdatableTable(kinds, entries, nextKey)
	if err != nil {
		return nil, nil, err
	}
	t.Epoch, t.Predecessor = prev.Epoch+1, prev.Hash()
	t.SDKSectionSize, t.MaxThreads, t.EDMM, t.Layout, t.LibpalSHA256 = prev.SDKSectionSize, prev.MaxThreads, prev.EDMM, prev.Layout, prev.LibpalSHA256
	return t, proofs, nil
}

// SignSuccessor signs the successor statement making next the successor of
// prev with key, the update key prev commits to.
func SignSuccessor(key ed25519.PrivateKey, prev, next *VersionedTable) ([]byte, error) {
	switch {
	case len(key) != ed25519.PrivateKeySize:
		return nil, fmt.Errorf("%w: update key of %d bytes, want an Ed25519 private key", ErrLineage, len(key))
	case !prev.Updatable || !next.Updatable:
		return nil, fmt.Errorf("%w: both tables must be updatable", ErrLineage)
	case !bytes.Equal(key.Public().(ed25519.PublicKey), prev.UpdateKey[:]):
		return nil, fmt.Errorf("%w: this key is not the update key the predecessor commits to (%x)", ErrLineage, prev.UpdateKey)
	case next.Epoch != prev.Epoch+1 || next.Predecessor != prev.Hash():
		return nil, fmt.Errorf("%w: the successor (epoch %d) does not record this predecessor (epoch %d)", ErrLineage, next.Epoch, prev.Epoch)
	}
	return ed25519.Sign(key, SuccessorStatement(next.Predecessor, next.Hash(), next.Epoch)), nil
}

// Lineage is the history of an updatable group: its tables from epoch 0
// to the newest, and the statements between them. It is public and need
// not be stored where it is trusted: a member checks it against its own
// measured table.
type Lineage struct {
	Tables []*VersionedTable // Tables[e] is the table of epoch e
	// Statements[e-1] is the update key of Tables[e-1] signing Tables[e]
	// as its successor (an Ed25519 signature of SuccessorStatement).
	Statements [][]byte
}

// Head returns the newest table.
func (l *Lineage) Head() *VersionedTable { return l.Tables[len(l.Tables)-1] }

// Extend returns the lineage with next, signed by key (the update key of
// the newest table), as its new head.
func (l *Lineage) Extend(next *VersionedTable, key ed25519.PrivateKey) (*Lineage, error) {
	sig, err := SignSuccessor(key, l.Head(), next)
	if err != nil {
		return nil, err
	}
	return &Lineage{Tables: append(l.Tables[:len(l.Tables):len(l.Tables)], next),
		Statements: append(l.Statements[:len(l.Statements):len(l.Statements)], sig)}, nil
}

// Marshal encodes the lineage: the tag "MAGElng" 01, u32 number of tables
// n, the n tables (160 bytes each), the n-1 statements (64 bytes each).
func (l *Lineage) Marshal() []byte {
	b := binary.LittleEndian.AppendUint32([]byte(lineageTag), uint32(len(l.Tables)))
	return l.appendBody(b)
}

func (l *Lineage) appendBody(b []byte) []byte {
	for _, t := range l.Tables {
		b = append(b, t.Marshal()...)
	}
	for _, s := range l.Statements {
		b = append(b, s...)
	}
	return b
}

// ParseLineage decodes a lineage and checks its links (not its
// statements: Verify does).
func ParseLineage(b []byte) (*Lineage, error) {
	if len(b) < 12 || string(b[:8]) != lineageTag {
		return nil, fmt.Errorf("%w: not a lineage", ErrLineage)
	}
	l, rest, err := parseLineageBody(binary.LittleEndian.Uint32(b[8:]), b[12:])
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the lineage", ErrLineage, len(rest))
	}
	return l, nil
}

// parseLineageBody decodes n tables and their statements from b and
// returns what follows.
func parseLineageBody(count uint32, b []byte) (*Lineage, []byte, error) {
	n := uint64(count)
	if n == 0 || n > MaxEpoch+1 {
		return nil, nil, fmt.Errorf("%w: %d tables, want 1 to %d", ErrLineage, n, MaxEpoch+1)
	}
	size := n*updatableTableSize + (n-1)*statementSize
	if uint64(len(b)) < size {
		return nil, nil, fmt.Errorf("%w: %d bytes cannot hold %d tables and their statements", ErrLineage, len(b), n)
	}
	l := &Lineage{}
	for e := range n {
		t, err := ParseVersionedTable(b[e*updatableTableSize:][:updatableTableSize])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: table of epoch %d: %w", ErrLineage, e, err)
		}
		l.Tables = append(l.Tables, t)
	}
	for e := range n - 1 {
		off := n*updatableTableSize + e*statementSize
		l.Statements = append(l.Statements, bytes.Clone(b[off:off+statementSize]))
	}
	if _, err := l.links(); err != nil {
		return nil, nil, err
	}
	return l, b[size:], nil
}

// links checks the lineage's shape, and returns every table's hash: epochs
// 0, 1, ..., each table recording its predecessor's hash, the same
// constants throughout, a statement per successor. It verifies no
// signature.
func (l *Lineage) links() ([][32]byte, error) {
	n := len(l.Tables)
	if n == 0 || n > MaxEpoch+1 {
		return nil, fmt.Errorf("%w: %d tables, want 1 to %d", ErrLineage, n, MaxEpoch+1)
	}
	if len(l.Statements) != n-1 {
		return nil, fmt.Errorf("%w: %d tables need %d statements, not %d", ErrLineage, n, n-1, len(l.Statements))
	}
	hashes := make([][32]byte, n)
	for e, t := range l.Tables {
		switch {
		case t == nil || !t.Merkle || !t.Updatable:
			return nil, fmt.Errorf("%w: the table of epoch %d is not an updatable Merkle table", ErrLineage, e)
		case t.Epoch != uint32(e):
			return nil, fmt.Errorf("%w: the table at epoch %d says it is epoch %d", ErrLineage, e, t.Epoch)
		case e > 0 && t.Predecessor != hashes[e-1]:
			return nil, fmt.Errorf("%w: the table of epoch %d does not record the table of epoch %d as its predecessor", ErrLineage, e, e-1)
		case e > 0 && !sameConstants(t, l.Tables[0]):
			return nil, fmt.Errorf("%w: the table of epoch %d changes the group's section size or Gramine runtime", ErrLineage, e)
		case e > 0 && len(l.Statements[e-1]) != statementSize:
			return nil, fmt.Errorf("%w: statement %d has %d bytes, want %d", ErrLineage, e, len(l.Statements[e-1]), statementSize)
		}
		hashes[e] = t.Hash()
	}
	return hashes, nil
}

// verifyStatement checks the statement making Tables[e] the successor of
// Tables[e-1], with the update key of Tables[e-1].
func (l *Lineage) verifyStatement(e int, hashes [][32]byte) error {
	prev := l.Tables[e-1]
	if prev.UpdateKey == [32]byte{} {
		return fmt.Errorf("%w: the table of epoch %d is final (its update key is all zeros): it has no successor", ErrLineage, e-1)
	}
	if !ed25519.Verify(prev.UpdateKey[:], SuccessorStatement(hashes[e-1], hashes[e], uint32(e)), l.Statements[e-1]) {
		return fmt.Errorf("%w: the statement for epoch %d is not signed by the update key of epoch %d", ErrLineage, e, e-1)
	}
	return nil
}

// Verify checks the whole lineage, trusting its first table: the links
// and every statement. (Members verify a lineage from their own measured
// table instead: see LineageVerifier.)
func (l *Lineage) Verify() error {
	_, err := l.verify()
	return err
}

// verify is Verify, returning every table's hash.
func (l *Lineage) verify() ([][32]byte, error) {
	hashes, err := l.links()
	if err != nil {
		return nil, err
	}
	for e := 1; e < len(l.Tables); e++ {
		if err := l.verifyStatement(e, hashes); err != nil {
			return nil, err
		}
	}
	return hashes, nil
}

// LineageProof is what a member of an updatable group proves its
// membership with, in a handshake and in the proof file beside it: the
// group's lineage up to the newest table its host was given, the epoch of
// the table it measured, its membership proof in the newest table and,
// when the table it measured is older, its membership proof in that table
// too.
//
// An entry counts only in the tables that hold it: a member is accepted
// when both the table it measured and the newest table hold its entry.
// Code added at epoch 1 but built over epoch 0's table is in no table it
// could have measured, so it is refused; otherwise such a build would trust
// epoch 0's update key for ever, and a leaked retired key could fork its
// view of the group after a rotation or a final epoch.
type LineageProof struct {
	Measured uint32
	Lineage  Lineage
	Proof    *MembershipProof // in the newest table of Lineage
	// MeasuredProof is the membership proof in the table the member
	// measured (Lineage.Tables[Measured]), required when that table is
	// older than the newest and absent otherwise. Its kind and entry are
	// Proof's; its index may differ.
	MeasuredProof *MembershipProof
}

// IsLineageProof reports whether b starts an encoded LineageProof (rather
// than a MembershipProof), of any version.
func IsLineageProof(b []byte) bool { return len(b) >= 8 && string(b[:7]) == lineageProofTag[:7] }

// Marshal encodes the proof: the tag "MAGElin" 02, u32 measured epoch,
// u32 number of tables n, the n tables (160 bytes each), the n-1
// statements (64 bytes each), the membership proof in the newest table,
// then, when the measured epoch is older than the newest, the membership
// proof in the measured table.
func (p *LineageProof) Marshal() []byte {
	b := append([]byte(lineageProofTag), make([]byte, 8)...)
	binary.LittleEndian.PutUint32(b[8:], p.Measured)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(p.Lineage.Tables)))
	b = append(p.Lineage.appendBody(b), p.Proof.Marshal()...)
	if p.MeasuredProof != nil {
		b = append(b, p.MeasuredProof.Marshal()...)
	}
	return b
}

// ParseLineageProof decodes a lineage proof. It bounds the lineage
// (MaxEpoch) and checks its links, not its statements: a LineageVerifier
// does, from the verifier's own table.
func ParseLineageProof(b []byte) (*LineageProof, error) {
	if !IsLineageProof(b) || len(b) < 16 {
		return nil, fmt.Errorf("%w: not a lineage proof", ErrLineage)
	}
	if b[7] != lineageProofTag[7] {
		return nil, fmt.Errorf("%w: lineage proof of version %d, want %d (sign the group's newest epoch again to get new proofs)", ErrLineage, b[7], lineageProofTag[7])
	}
	l, rest, err := parseLineageBody(binary.LittleEndian.Uint32(b[12:]), b[16:])
	if err != nil {
		return nil, err
	}
	p := &LineageProof{Measured: binary.LittleEndian.Uint32(b[8:]), Lineage: *l}
	if int(p.Measured) >= len(l.Tables) {
		return nil, fmt.Errorf("%w: measured epoch %d in a lineage of %d tables", ErrLineage, p.Measured, len(l.Tables))
	}
	if p.Proof, rest, err = parseMembershipProofPrefix(rest); err != nil {
		return nil, err
	}
	if int(p.Measured) < len(l.Tables)-1 {
		if p.MeasuredProof, rest, err = parseMembershipProofPrefix(rest); err != nil {
			return nil, fmt.Errorf("the membership proof in the measured table (epoch %d): %w", p.Measured, err)
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the lineage proof", ErrProof, len(rest))
	}
	return p, nil
}

// LineageVerifier checks members of an updatable group, of any epoch,
// from the table this member measured. It keeps the newest table it has
// learned (so a member that has seen a successor refuses the members it
// dropped) and is safe for concurrent use.
type LineageVerifier struct {
	mu     sync.Mutex
	tables []*VersionedTable // epoch 0 to the newest known
	hashes [][32]byte
	// statements[e-1] makes tables[e] the successor of tables[e-1]: as
	// received up to the measured table (whose predecessors are checked by
	// hash), verified after it.
	statements [][]byte
	derivers   []*TableDeriver // lazily, per epoch
	own        *TableDeriver   // the measured table's
}

// LineageMember is a member a LineageVerifier accepted.
type LineageMember struct {
	MRENCLAVE sgx.Measurement // finished over the table it measured
	Index     uint64          // its index in the newest table
	Epoch     uint32          // the newest table's epoch
	Measured  uint32          // the epoch of the table it measured
}

// NewLineageVerifier starts from d, this member's own measured table
// (which must be updatable), and own, this member's lineage proof (from
// untrusted storage). The tables before the measured one are checked by
// their hashes, those after it by their statements. It returns the
// verifier and this member as it derives itself, which the caller
// compares with its own MRENCLAVE.
func NewLineageVerifier(d *TableDeriver, own *LineageProof) (*LineageVerifier, LineageMember, error) {
	t := d.merkle
	if t == nil || !t.Updatable {
		return nil, LineageMember{}, fmt.Errorf("%w: this member's table commits to no update key", ErrLineage)
	}
	if own == nil || own.Proof == nil {
		return nil, LineageMember{}, fmt.Errorf("%w: no lineage proof, or no membership proof in it", ErrLineage)
	}
	hashes, err := own.Lineage.links()
	if err != nil {
		return nil, LineageMember{}, err
	}
	e := t.Epoch
	if own.Measured != e || int(e) >= len(hashes) || hashes[e] != t.Hash() {
		return nil, LineageMember{}, fmt.Errorf("%w: the lineage proof's table of epoch %d is not the table this member measured (epoch %d)", ErrLineage, own.Measured, e)
	}
	// Up to the measured table, the links are the measured table's own
	// commitments; after it, each needs its statement.
	v := &LineageVerifier{tables: own.Lineage.Tables[: e+1 : e+1], hashes: hashes[: e+1 : e+1],
		statements: own.Lineage.Statements[:e:e], own: d}
	v.derivers = make([]*TableDeriver, e+1)
	v.derivers[e] = d
	m, err := v.Verify(own)
	if err != nil {
		return nil, LineageMember{}, err
	}
	return v, m, nil
}

// Epoch returns the epoch of the newest table the verifier knows.
func (v *LineageVerifier) Epoch() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return uint32(len(v.tables) - 1)
}

// Head returns the newest table the verifier knows.
func (v *LineageVerifier) Head() *VersionedTable {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.tables[len(v.tables)-1]
}

// Lineage returns the lineage the verifier knows, from epoch 0 to the
// newest table: what a member persists so that a restart does not roll it
// back (see Restore).
func (v *LineageVerifier) Lineage() *Lineage {
	v.mu.Lock()
	defer v.mu.Unlock()
	return &Lineage{Tables: slices.Clone(v.tables), Statements: slices.Clone(v.statements)}
}

// Check checks a member's lineage proof without learning from it: its
// lineage must agree with every table this verifier knows and reach at
// least the newest one (the statements of any newer table are verified),
// its membership proofs must hold in the newest table and in the table it
// measured, and its MRENCLAVE is finished over the table it measured.
func (v *LineageVerifier) Check(p *LineageProof) (LineageMember, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, _, err := v.check(p)
	return m, err
}

// Verify is Check, then Learn: once the proof has verified in full, the
// verifier keeps its newer tables.
func (v *LineageVerifier) Verify(p *LineageProof) (LineageMember, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, hashes, err := v.check(p)
	if err != nil {
		return LineageMember{}, err
	}
	return m, v.learn(&p.Lineage, hashes)
}

// Learn keeps the newer tables of a member's lineage proof, once the proof
// checks in full (as Check): a verifier learns successors only from members
// whose own proof verifies. It reports whether the verifier learned a newer
// table.
func (v *LineageVerifier) Learn(p *LineageProof) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p == nil || len(p.Lineage.Tables) <= len(v.tables) {
		return false, nil
	}
	_, hashes, err := v.check(p)
	if err != nil {
		return false, err
	}
	return true, v.learn(&p.Lineage, hashes)
}

// Restore learns the newer tables of a lineage this verifier knew before
// (from Lineage, kept by the member): its tables must agree with the ones
// known, and every newer table's statement must verify. A lineage no newer
// than what the verifier knows changes nothing.
func (v *LineageVerifier) Restore(l *Lineage) error {
	if l == nil {
		return fmt.Errorf("%w: no lineage", ErrLineage)
	}
	hashes, err := l.links()
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.agrees(hashes); err != nil {
		return err
	}
	for e := len(v.tables); e < len(hashes); e++ {
		if err := l.verifyStatement(e, hashes); err != nil {
			return err
		}
	}
	return v.learn(l, hashes)
}

// agrees checks that a lineage's first tables are the ones v knows.
func (v *LineageVerifier) agrees(hashes [][32]byte) error {
	for e := range min(len(v.tables), len(hashes)) {
		if hashes[e] != v.hashes[e] {
			return fmt.Errorf("%w: the table of epoch %d is not this group's", ErrLineage, e)
		}
	}
	return nil
}

// learn keeps the tables of l (whose hashes are given, and whose newer
// statements are verified) past the ones v knows. v.mu is held.
func (v *LineageVerifier) learn(l *Lineage, hashes [][32]byte) error {
	for e := len(v.tables); e < len(hashes); e++ {
		v.tables, v.hashes = append(v.tables, l.Tables[e]), append(v.hashes, hashes[e])
		v.statements, v.derivers = append(v.statements, l.Statements[e-1]), append(v.derivers, nil)
	}
	return nil
}

// check is Check with v.mu held; it also returns the hashes of p's tables.
func (v *LineageVerifier) check(p *LineageProof) (LineageMember, [][32]byte, error) {
	if p == nil || p.Proof == nil {
		return LineageMember{}, nil, fmt.Errorf("%w: no lineage proof, or no membership proof in it", ErrLineage)
	}
	hashes, err := p.Lineage.links()
	if err != nil {
		return LineageMember{}, nil, err
	}
	n := len(hashes)
	if int(p.Measured) >= n {
		return LineageMember{}, nil, fmt.Errorf("%w: measured epoch %d in a lineage of %d tables", ErrLineage, p.Measured, n)
	}
	known := len(v.tables)
	if err := v.agrees(hashes); err != nil {
		return LineageMember{}, nil, fmt.Errorf("the peer's lineage: %w", err)
	}
	if n < known {
		return LineageMember{}, nil, fmt.Errorf("%w: its lineage stops at epoch %d, this member knows epoch %d", ErrStale, n-1, known-1)
	}
	for e := known; e < n; e++ {
		if err := p.Lineage.verifyStatement(e, hashes); err != nil {
			return LineageMember{}, nil, err
		}
	}
	head := p.Lineage.Tables[n-1]
	if err := checkProof(head, p.Proof); err != nil {
		return LineageMember{}, nil, fmt.Errorf("in the table of epoch %d: %w", head.Epoch, err)
	}
	// The entry must also be in the table the member measured.
	measured := p.Proof
	switch mp := p.MeasuredProof; {
	case int(p.Measured) == n-1 && mp != nil:
		return LineageMember{}, nil, fmt.Errorf("%w: a second membership proof for a member that measured the newest table", ErrLineage)
	case int(p.Measured) < n-1 && mp == nil:
		return LineageMember{}, nil, fmt.Errorf("%w: the member measured the table of epoch %d but proves no membership in it: an entry counts only in the tables that hold it", ErrProof, p.Measured)
	case mp != nil:
		if mp.Kind != p.Proof.Kind || mp.Entry != p.Proof.Entry {
			return LineageMember{}, nil, fmt.Errorf("%w: the membership proofs in epochs %d and %d are for different entries", ErrProof, p.Measured, head.Epoch)
		}
		if err := checkProof(p.Lineage.Tables[p.Measured], mp); err != nil {
			return LineageMember{}, nil, fmt.Errorf("in the table it measured (epoch %d): %w", p.Measured, err)
		}
		measured = mp
	}
	var d *TableDeriver
	if int(p.Measured) < known {
		d = v.derivers[p.Measured]
	}
	if d == nil {
		t := p.Lineage.Tables[p.Measured]
		if d, err = newVersionedDeriver(t, t.Marshal(), v.own.c.Libpal); err != nil {
			return LineageMember{}, nil, err
		}
		if int(p.Measured) < known {
			v.derivers[p.Measured] = d
		}
	}
	mr, err := d.finishMember(measured.Kind, measured.Index, measured.Entry)
	if err != nil {
		return LineageMember{}, nil, err
	}
	return LineageMember{MRENCLAVE: mr, Index: p.Proof.Index, Epoch: head.Epoch, Measured: p.Measured}, hashes, nil
}
