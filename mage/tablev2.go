package mage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// Kind is the kind of a member in a versioned table.
type Kind uint8

// Member kinds.
const (
	KindSDK     Kind = 1 // an SGX SDK enclave: its .sgx_mage section is measured last
	KindGramine Kind = 2 // a Gramine enclave: the table ends its manifest, a public suffix follows
)

func (k Kind) String() string {
	switch k {
	case KindSDK:
		return "sdk"
	case KindGramine:
		return "gramine"
	case KindSNP:
		return "snp"
	case KindTDX:
		return "tdx"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// The versioned table (docs/table-format.md). Its first eight bytes are
// "MAGE", the version, two zero bytes and 0x80: read as the prototype's
// u64 count they have bit 63 set, so a classic reader refuses the table
// instead of misreading it.
const (
	v2Tag        = "MAGE\x02\x00\x00\x80"
	v2HeaderSize = 64
	v2EntrySize  = 8 + EntrySize
	// GramineLayoutV15 is the Gramine enclave layout of v1.5 and later.
	GramineLayoutV15 = 1
)

// VersionedTable is a table that describes members of several kinds: the
// group-wide constants a verifier needs for each kind, and every member's
// kind and entry, in member order.
type VersionedTable struct {
	Kinds   []Kind
	Entries []Entry // the SGX members' entries (zero for a VM member)
	// SNP and TDX hold the confidential VM members' entries (nil for
	// other members), in member order; both are nil without VM members.
	SNP []*SNPEntry
	TDX []*TDXEntry
	// SDKSectionSize is the size of the SDK members' .sgx_mage section
	// (0 without SDK members).
	SDKSectionSize uint32
	// The Gramine members' constants (zero without Gramine members).
	LibpalSHA256 [32]byte
	MaxThreads   uint32
	EDMM         bool
	Layout       uint8
	// With Merkle set, the table holds the root of the members' Merkle
	// tree and their number instead of Kinds and Entries (see merkle.go).
	Merkle bool
	Root   [32]byte
	Count  uint32
	// With Updatable set (a Merkle table only), the table commits to an
	// update key that may sign successors of the group, and records its
	// place in the group's lineage: its epoch (0 for the first table) and
	// the hash of its predecessor's table (zero at epoch 0). See update.go.
	Updatable   bool
	UpdateKey   [32]byte // an Ed25519 public key; all zeros: no successor is accepted
	Epoch       uint32
	Predecessor [32]byte
}

// NewMerkleTable returns the Merkle table of members (their kinds and
// entries, in member order) and every member's membership proof.
func NewMerkleTable(kinds []Kind, entries []Entry) (*VersionedTable, []*MembershipProof, error) {
	n := len(entries)
	if n == 0 || n != len(kinds) || n > MaxMerkleMembers {
		return nil, nil, fmt.Errorf("%w: %d members (%d kinds) for a Merkle table of at most %d", ErrTable, n, len(kinds), MaxMerkleMembers)
	}
	leaves := make([][32]byte, n)
	for i := range entries {
		if err := entries[i].check(); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		leaves[i] = leafHash(kinds[i], entries[i])
	}
	paths, root := merklePaths(leaves)
	proofs := make([]*MembershipProof, n)
	for i := range proofs {
		proofs[i] = &MembershipProof{Index: uint64(i), Kind: kinds[i], Entry: entries[i], Path: paths[i]}
	}
	return &VersionedTable{Merkle: true, Root: root, Count: uint32(n)}, proofs, nil
}

// IsVersioned reports whether b starts a versioned table.
func IsVersioned(b []byte) bool { return len(b) >= 8 && string(b[:8]) == v2Tag }

// Marshal encodes the table: header and entries, without padding.
func (t *VersionedTable) Marshal() []byte {
	b := make([]byte, v2HeaderSize, v2HeaderSize+v2EntrySize*len(t.Entries))
	le := binary.LittleEndian
	copy(b, v2Tag)
	le.PutUint32(b[8:], uint32(len(t.Entries)))
	if t.Merkle {
		le.PutUint32(b[8:], t.Count)
		flags := uint32(FlagMerkle)
		if t.Updatable {
			flags |= FlagUpdateKey
			le.PutUint32(b[28:], t.Epoch)
		}
		le.PutUint32(b[12:], flags)
	}
	le.PutUint32(b[16:], t.SDKSectionSize)
	le.PutUint32(b[20:], t.MaxThreads)
	if t.EDMM {
		b[24] = 1
	}
	b[25] = t.Layout
	copy(b[32:], t.LibpalSHA256[:])
	if t.Merkle {
		b = append(b, t.Root[:]...)
		if t.Updatable {
			b = append(append(b, t.UpdateKey[:]...), t.Predecessor[:]...)
		}
		return b
	}
	for i, e := range t.Entries {
		if k := t.Kinds[i]; k == KindSNP || k == KindTDX {
			var body []byte
			if k == KindSNP {
				body = t.SNP[i].marshal()
			} else {
				body = t.TDX[i].marshal()
			}
			b = append(b, byte(k), 0, 0, 0)
			b = le.AppendUint32(b, uint32(len(body)))
			b = append(b, body...)
			b = append(b, make([]byte, -len(body)&7)...)
			continue
		}
		rec := make([]byte, 8, v2EntrySize)
		rec[0] = byte(t.Kinds[i])
		b = append(b, e.append(rec)...)
	}
	return b
}

// ParseVersionedTable decodes a versioned table; bytes after it must be
// zero (in an SDK section, the padding to whole pages).
func ParseVersionedTable(b []byte) (*VersionedTable, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: versioned table: %s", ErrTable, fmt.Sprintf(format, a...))
	}
	if !IsVersioned(b) || len(b) < v2HeaderSize {
		return nil, bad("no header")
	}
	le := binary.LittleEndian
	n := uint64(le.Uint32(b[8:]))
	flags := le.Uint32(b[12:])
	if flags&^(FlagMerkle|FlagUpdateKey) != 0 {
		return nil, bad("flags %#x: this version knows only the Merkle and update-key flags", flags)
	}
	if flags&FlagUpdateKey != 0 && flags&FlagMerkle == 0 {
		return nil, bad("an update key needs a Merkle table")
	}
	t := &VersionedTable{SDKSectionSize: le.Uint32(b[16:]), MaxThreads: le.Uint32(b[20:]), EDMM: b[24] == 1, Layout: b[25],
		Merkle: flags&FlagMerkle != 0, Updatable: flags&FlagUpdateKey != 0}
	if t.Updatable {
		t.Epoch = le.Uint32(b[28:])
	}
	if b[24] > 1 || le.Uint16(b[26:]) != 0 || (!t.Updatable && le.Uint32(b[28:]) != 0) {
		return nil, bad("reserved header bytes are not zero")
	}
	copy(t.LibpalSHA256[:], b[32:])
	if t.Merkle {
		if n == 0 || n > MaxMerkleMembers {
			return nil, bad("%d members, want 1 to %d", n, MaxMerkleMembers)
		}
		if len(b) < v2HeaderSize+32 {
			return nil, bad("no Merkle root")
		}
		t.Count, t.Root = uint32(n), [32]byte(b[v2HeaderSize:])
		end := v2HeaderSize + 32
		if t.Updatable {
			if len(b) < v2HeaderSize+96 {
				return nil, bad("no update key and predecessor after the Merkle root")
			}
			t.UpdateKey, t.Predecessor = [32]byte(b[end:]), [32]byte(b[end+32:])
			end += 64
			switch {
			case t.Epoch > MaxEpoch:
				return nil, bad("epoch %d, at most %d", t.Epoch, MaxEpoch)
			case (t.Epoch == 0) != (t.Predecessor == [32]byte{}):
				return nil, bad("epoch %d with predecessor %x: the first table (epoch 0) and only it has none", t.Epoch, t.Predecessor)
			}
		}
		if i := bytes.IndexFunc(b[end:], func(r rune) bool { return r != 0 }); i >= 0 {
			return nil, bad("non-zero byte at offset %d after the Merkle table", end+i)
		}
		if t.SDKSectionSize != 0 && checkSectionSize(int(t.SDKSectionSize)) != nil {
			return nil, bad("SDK section size %d", t.SDKSectionSize)
		}
		if t.MaxThreads > gramine.MaxThreads || (t.MaxThreads > 0 && t.Layout != GramineLayoutV15) {
			return nil, bad("Gramine constants: %d threads, layout %d", t.MaxThreads, t.Layout)
		}
		return t, nil
	}
	if n == 0 || n > MaxGramineMembers {
		return nil, bad("%d members, want 1 to %d", n, MaxGramineMembers)
	}
	end := uint64(v2HeaderSize)
	gram, sdk, vm := false, false, false
	suffix := 0
	for i := range n {
		if end+8 > uint64(len(b)) {
			return nil, bad("%d entries do not fit in %d bytes", n, len(b))
		}
		rec := b[end:]
		k := Kind(rec[0])
		if k == KindSNP || k == KindTDX {
			size := uint64(le.Uint32(rec[4:]))
			if !bytes.Equal(rec[1:4], make([]byte, 3)) || size > uint64(len(b))-end-8 || size+(-size&7) > uint64(len(b))-end-8 {
				return nil, bad("entry %d: a %s entry of %d bytes does not fit", i, k, size)
			}
			body := rec[8 : 8+size]
			if pad := rec[8+size : 8+size+(-size&7)]; !bytes.Equal(pad, make([]byte, len(pad))) {
				return nil, bad("entry %d: non-zero padding", i)
			}
			for len(t.SNP) < int(i) {
				t.SNP, t.TDX = append(t.SNP, nil), append(t.TDX, nil)
			}
			var se *SNPEntry
			var te *TDXEntry
			var err error
			if k == KindSNP {
				se, err = parseSNPEntry(body)
				if err == nil {
					suffix += len(se.Launch.Suffix) + 1
				}
			} else {
				te, err = parseTDXEntry(body)
				suffix++
			}
			if err != nil {
				return nil, fmt.Errorf("versioned table entry %d: %w", i, err)
			}
			if suffix > maxTableVMPages {
				return nil, bad("the VM members' entries make a verifier hash more than %d pages", maxTableVMPages)
			}
			vm = true
			t.Kinds, t.Entries, t.SNP, t.TDX = append(t.Kinds, k), append(t.Entries, Entry{}), append(t.SNP, se), append(t.TDX, te)
			end += 8 + size + (-size & 7)
			continue
		}
		if end+v2EntrySize > uint64(len(b)) {
			return nil, bad("%d entries do not fit in %d bytes", n, len(b))
		}
		rec = rec[:v2EntrySize]
		if (k != KindSDK && k != KindGramine) || !bytes.Equal(rec[1:8], make([]byte, 7)) {
			return nil, bad("entry %d: kind %d is not one this version knows", i, rec[0])
		}
		e, err := ParseEntry(rec[8:])
		if err != nil {
			return nil, fmt.Errorf("versioned table entry %d: %w", i, err)
		}
		gram, sdk = gram || k == KindGramine, sdk || k == KindSDK
		t.Kinds, t.Entries = append(t.Kinds, k), append(t.Entries, e)
		end += v2EntrySize
	}
	if vm {
		for len(t.SNP) < len(t.Kinds) {
			t.SNP, t.TDX = append(t.SNP, nil), append(t.TDX, nil)
		}
	}
	if i := bytes.IndexFunc(b[end:], func(r rune) bool { return r != 0 }); i >= 0 {
		return nil, bad("non-zero byte at offset %d after the last entry", end+uint64(i))
	}
	switch {
	case sdk && (t.SDKSectionSize == 0 || checkSectionSize(int(t.SDKSectionSize)) != nil || uint64(t.SDKSectionSize) < end):
		return nil, bad("SDK section size %d cannot hold the table", t.SDKSectionSize)
	case gram && (t.MaxThreads < 1 || t.MaxThreads > gramine.MaxThreads || t.Layout != GramineLayoutV15):
		return nil, bad("Gramine constants: %d threads, layout %d", t.MaxThreads, t.Layout)
	}
	return t, nil
}

// TableDeriver derives every member's MRENCLAVE from a table of any
// format: a classic section, a Gramine group's payload, or a versioned
// table (in an SDK member's section or a Gramine member's manifest).
type TableDeriver struct {
	kinds   []Kind
	entries []Entry
	snp     []*SNPEntry     // the SNP members' entries
	tdx     []*TDXEntry     // the TDX members' entries
	table   [32]byte        // SHA-256 of a versioned table, which VM members' command lines carry
	merkle  *VersionedTable // a Merkle table: members are derived from proofs
	section []byte          // what SDK members measure last
	text    []byte          // what Gramine members measure after their own pages
	lineLen uint64
	c       GramineConstants
	mu      sync.Mutex // guards h
	h       *measure.Hash
}

// NewSectionDeriver reads the .sgx_mage section of an SDK member: a
// classic table, or a versioned one (libpal is then needed if the group
// has Gramine members).
func NewSectionDeriver(section []byte, libpal *gramine.Libpal) (*TableDeriver, error) {
	if err := checkSectionSize(len(section)); err != nil {
		return nil, err
	}
	if !IsVersioned(section) {
		t, err := ParseTable(section)
		if err != nil {
			return nil, err
		}
		d := &TableDeriver{entries: t.Entries, section: section, h: measure.New().Batched()}
		for range t.Entries {
			d.kinds = append(d.kinds, KindSDK)
		}
		return d, nil
	}
	t, err := ParseVersionedTable(section)
	if err != nil {
		return nil, err
	}
	if int(t.SDKSectionSize) != len(section) {
		return nil, fmt.Errorf("%w: versioned table says SDK sections have %d bytes, this one has %d", ErrTable, t.SDKSectionSize, len(section))
	}
	return newVersionedDeriver(t, t.Marshal(), libpal)
}

// NewPayloadDeriver reads the table of a Gramine member (the bytes of its
// loader.env.MAGE_TABLE): a Gramine group's bare entries, with the group's
// constants c (every Gramine member's own), or a versioned table, whose
// header gives the constants (c.Libpal must be the build it names).
func NewPayloadDeriver(payload []byte, c GramineConstants) (*TableDeriver, error) {
	if c.Libpal == nil {
		return nil, fmt.Errorf("%w: %w: deriving Gramine members needs it", ErrTable, ErrNeedLibpal)
	}
	if IsVersioned(payload) {
		t, err := ParseVersionedTable(payload)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(t.Marshal(), payload) {
			return nil, fmt.Errorf("%w: versioned payload has trailing bytes", ErrTable)
		}
		return newVersionedDeriver(t, payload, c.Libpal)
	}
	g, err := NewGramineDeriver(payload, c)
	if err != nil {
		return nil, err
	}
	d := &TableDeriver{entries: g.entries, text: g.text, lineLen: g.lineLen, c: c, h: g.h}
	for range g.entries {
		d.kinds = append(d.kinds, KindGramine)
	}
	return d, nil
}

func newVersionedDeriver(t *VersionedTable, payload []byte, libpal *gramine.Libpal) (*TableDeriver, error) {
	d := &TableDeriver{kinds: t.Kinds, entries: t.Entries, snp: t.SNP, tdx: t.TDX, table: TableSHA256(payload), h: measure.New().Batched()}
	if t.Merkle {
		d.merkle = t
		if t.MaxThreads > 0 {
			d.kinds = []Kind{KindGramine} // to set up the Gramine constants below
		}
	}
	if t.SDKSectionSize > 0 {
		d.section = make([]byte, t.SDKSectionSize)
		copy(d.section, payload)
	}
	for _, k := range d.kinds {
		if k != KindGramine {
			continue
		}
		if libpal == nil {
			return nil, fmt.Errorf("%w: %w: the group has Gramine members, and deriving them needs the libpal.so whose SHA-256 is %x", ErrTable, ErrNeedLibpal, t.LibpalSHA256)
		}
		if libpal.SHA256 != t.LibpalSHA256 {
			return nil, fmt.Errorf("%w: the group's Gramine members run the libpal with SHA-256 %x, not %x", ErrTable, t.LibpalSHA256, libpal.SHA256)
		}
		line := GramineTableText(payload)
		d.text = make([]byte, (len(line)+1+PageSize-1)/PageSize*PageSize)
		copy(d.text, line)
		d.lineLen = uint64(len(line))
		d.c = GramineConstants{Libpal: libpal, MaxThreads: int(t.MaxThreads), EDMM: t.EDMM}
		break
	}
	if t.Merkle {
		d.kinds = nil
	}
	return d, nil
}

// IsMerkle reports whether the table is a Merkle table: its members are
// derived from their membership proofs (DeriveProof), not by index.
func (d *TableDeriver) IsMerkle() bool { return d.merkle != nil }

// IsUpdatable reports whether the table is a Merkle table that commits to
// an update key: its members are checked with a LineageVerifier.
func (d *TableDeriver) IsUpdatable() bool { return d.merkle != nil && d.merkle.Updatable }

// DeriveProof checks a member's proof against the root in this table and
// returns the member's MRENCLAVE, finished over this table as the member
// measured it: O(log N) hashes and the table's pages (and, for a Gramine
// member, the replayed suffix).
func (d *TableDeriver) DeriveProof(p *MembershipProof) (sgx.Measurement, error) {
	if d.merkle == nil {
		return sgx.Measurement{}, fmt.Errorf("%w: this table is not a Merkle table", ErrProof)
	}
	if err := checkProof(d.merkle, p); err != nil {
		return sgx.Measurement{}, err
	}
	return d.finishMember(p.Kind, p.Index, p.Entry)
}

// checkProof checks a membership proof against a Merkle table's root.
func checkProof(t *VersionedTable, p *MembershipProof) error {
	switch {
	case p.Index >= uint64(t.Count):
		return fmt.Errorf("%w: index %d in a group of %d", ErrProof, p.Index, t.Count)
	case len(p.Path) > maxDepth(uint64(t.Count)):
		return fmt.Errorf("%w: a path of %d hashes in a tree of depth %d", ErrProof, len(p.Path), maxDepth(uint64(t.Count)))
	case !verifyPath(p.Index, uint64(t.Count), leafHash(p.Kind, p.Entry), p.Path, t.Root):
		return fmt.Errorf("%w: member %d's path does not lead to this group's root", ErrProof, p.Index)
	}
	return nil
}

// finishMember finishes the MRENCLAVE of a member of a Merkle group (of
// the given kind and entry, member index of the group) over this table.
func (d *TableDeriver) finishMember(k Kind, index uint64, e Entry) (sgx.Measurement, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch k {
	case KindSDK:
		if d.section == nil {
			return sgx.Measurement{}, fmt.Errorf("%w: the group has no SDK members", ErrProof)
		}
		return finish(d.h, e, d.section)
	case KindGramine:
		if d.text == nil {
			return sgx.Measurement{}, fmt.Errorf("%w: the group has no Gramine members", ErrProof)
		}
		g := GramineDeriver{text: d.text, lineLen: d.lineLen, c: d.c, h: d.h}
		return g.finish(int(index), e)
	}
	return sgx.Measurement{}, fmt.Errorf("%w: kind %d", ErrProof, k)
}

// Len returns the number of members.
func (d *TableDeriver) Len() int {
	if d.merkle != nil {
		return int(d.merkle.Count)
	}
	return len(d.entries)
}

// Kind returns member i's kind.
func (d *TableDeriver) Kind(i int) Kind { return d.kinds[i] }

// Derive returns member i's MRENCLAVE.
func (d *TableDeriver) Derive(i int) (sgx.Measurement, error) {
	if d.merkle != nil {
		return sgx.Measurement{}, fmt.Errorf("%w: a Merkle table holds no entries: derive members from their proofs", ErrTable)
	}
	if i < 0 || i >= len(d.entries) {
		return sgx.Measurement{}, fmt.Errorf("%w: member %d out of range [0, %d)", ErrTable, i, len(d.entries))
	}
	if d.kinds[i] == KindSNP || d.kinds[i] == KindTDX {
		return sgx.Measurement{}, fmt.Errorf("member %d: %w", i, ErrVMMember)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.kinds[i] == KindSDK {
		return finish(d.h, d.entries[i], d.section)
	}
	g := GramineDeriver{entries: d.entries, text: d.text, lineLen: d.lineLen, c: d.c, h: d.h}
	return g.Derive(i)
}

// DeriveLaunch returns the launch digest of member i, a confidential VM:
// its launch resumed over the hashes page of the command line that
// carries this table's SHA-256, then the pages after it.
func (d *TableDeriver) DeriveLaunch(i int) ([48]byte, error) {
	if d.merkle != nil || i < 0 || i >= len(d.kinds) || d.kinds[i] != KindSNP {
		return [48]byte{}, fmt.Errorf("%w: member %d is not an SNP member of this table", ErrTable, i)
	}
	return d.snp[i].Digest(d.table)
}

// DeriveTD returns the measurement of member i, a TDX trust domain: its
// RTMR3 extended with this table's event.
func (d *TableDeriver) DeriveTD(i int) (TDMeasurement, error) {
	if d.merkle != nil || i < 0 || i >= len(d.kinds) || d.kinds[i] != KindTDX {
		return TDMeasurement{}, fmt.Errorf("%w: member %d is not a TDX member of this table", ErrTable, i)
	}
	return d.tdx[i].Measurement(d.table), nil
}

// TableSHA256 returns the SHA-256 of a versioned table (what its VM
// members' command lines carry).
func (d *TableDeriver) TableSHA256() [32]byte { return d.table }

// Derived is one member's measurement: an MRENCLAVE for an enclave, a
// launch digest for a confidential VM.
type Derived struct {
	Kind      Kind
	MRENCLAVE sgx.Measurement // SDK and Gramine members
	Launch    [48]byte        // SNP members
	TD        TDMeasurement   // TDX members
}

// DeriveMembers returns every member's measurement, in member order.
func (d *TableDeriver) DeriveMembers() ([]Derived, error) {
	out := make([]Derived, d.Len())
	for i := range out {
		out[i].Kind = d.Kind(i)
		var err error
		switch out[i].Kind {
		case KindSNP:
			out[i].Launch, err = d.DeriveLaunch(i)
		case KindTDX:
			out[i].TD, err = d.DeriveTD(i)
		default:
			out[i].MRENCLAVE, err = d.Derive(i)
		}
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
	}
	return out, nil
}

// DeriveAll returns every member's MRENCLAVE, in member order; a table
// with confidential VM members is refused (DeriveMembers).
func (d *TableDeriver) DeriveAll() ([]sgx.Measurement, error) {
	out := make([]sgx.Measurement, d.Len())
	for i := range out {
		var err error
		if out[i], err = d.Derive(i); err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
	}
	return out, nil
}
