package sgxsdk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/sgx"
)

// Metadata format constants (common/inc/internal/metadata.h).
const (
	MetadataMagic     = 0x86A80294635D0E4C
	MetadataBlockSize = 0x5000 // bytes reserved in .note.sgxmeta
	metadataHeader    = 1888   // offsetof(metadata_t, data)
	layoutSize        = 32
	patchSize         = 32
	tcsTemplateSize   = 72

	// MageSectionName is the section that holds a MAGE group's table.
	MageSectionName = ".sgx_mage"

	pageSize       = 4096
	enclaveMaxSize = 0x1fffffffff // ENCLAVE_MAX_SIZE_64
)

// MetadataVersion builds a metadata version from its major and minor parts.
func MetadataVersion(major, minor uint32) uint64 { return uint64(major)<<32 | uint64(minor) }

// Metadata versions written by the SDK 2.6 signer.
var (
	Version2_4 = MetadataVersion(2, 4) // primary metadata of SDK 2.6
	Version2_1 = MetadataVersion(2, 1) // compatible copy for SDK 2.0 loaders
	Version1_4 = MetadataVersion(1, 4) // compatible copy for SDK 1.9 loaders
)

// Layout entry IDs (LAYOUT_ID_*).
const (
	LayoutHeapMin     = 1
	LayoutHeapInit    = 2
	LayoutHeapMax     = 3
	LayoutTCS         = 4
	LayoutTD          = 5
	LayoutSSA         = 6
	LayoutStackMax    = 7
	LayoutStackMin    = 8
	LayoutGuard       = 10
	LayoutHeapDynMin  = 11
	LayoutRsrvMin     = 20
	LayoutRsrvInit    = 21
	LayoutRsrvMax     = 22
	GroupFlag         = 1 << 12
	LayoutThreadGroup = GroupFlag | 9
	LayoutDynGroup    = GroupFlag | 19
)

// Page attributes of a layout entry (PAGE_ATTR_*).
const (
	AttrEADD       = 1 << 0
	AttrEEXTEND    = 1 << 1
	AttrEREMOVE    = 1 << 2
	AttrPostAdd    = 1 << 3
	AttrPostRemove = 1 << 4
	AttrDynThread  = 1 << 5
	AttrGrowDown   = 1 << 6
)

// SECINFO flag combinations used by layouts.
const (
	siNone = 0
	siRW   = 0x203
	siTCS  = 0x100
	// siExternal is the set of SECINFO flag bits an EADD may carry.
	siExternal = 0xff07
)

// Layout is one entry of the metadata layout table: either a range of pages
// (IsGroup false) or a group that repeats the EntryCount preceding entries
// LoadTimes times, each time LoadStep bytes further.
type Layout struct {
	ID            uint16
	Attributes    uint16 // for a group: EntryCount
	PageCount     uint32 // for a group: LoadTimes
	RVA           uint64 // for a group: LoadStep
	ContentSize   uint32 // fill pattern (u32) or content length
	ContentOffset uint32 // offset of the content in the metadata, or 0
	SIFlags       uint64
}

// IsGroup reports whether the entry is a group.
func (l Layout) IsGroup() bool { return l.ID&GroupFlag != 0 }

// EntryCount, LoadTimes and LoadStep are the group view of the entry.
func (l Layout) EntryCount() int   { return int(l.Attributes) }
func (l Layout) LoadTimes() uint32 { return l.PageCount }
func (l Layout) LoadStep() uint64  { return l.RVA }

func (l Layout) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], l.ID)
	le.PutUint16(b[2:], l.Attributes)
	le.PutUint32(b[4:], l.PageCount)
	le.PutUint64(b[8:], l.RVA)
	le.PutUint32(b[16:], l.ContentSize)
	le.PutUint32(b[20:], l.ContentOffset)
	le.PutUint64(b[24:], l.SIFlags)
}

func parseLayout(b []byte) Layout {
	le := binary.LittleEndian
	return Layout{le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint32(b[4:]), le.Uint64(b[8:]), le.Uint32(b[16:]), le.Uint32(b[20:]), le.Uint64(b[24:])}
}

// Patch copies Size bytes from offset Src of the metadata over the file
// image at offset Dst before the image is measured.
type Patch struct {
	Dst  uint64
	Src  uint32
	Size uint32
}

// Metadata is one metadata structure of a signed enclave (the primary one
// or a compatible copy).
type Metadata struct {
	Version           uint64
	TCSPolicy         uint32
	SSAFrameSize      uint32
	MaxSaveBufferSize uint32
	DesiredMiscSelect uint32
	TCSMinPool        uint32
	EnclaveSize       uint64
	Attributes        sgx.Attributes
	Sigstruct         *sgx.Sigstruct
	Layouts           []Layout
	Patches           []Patch

	raw []byte // the whole structure, Size bytes; content offsets point into it
}

// Size returns the size of the structure in bytes.
func (m *Metadata) Size() int { return len(m.raw) }

// Raw returns the structure's bytes.
func (m *Metadata) Raw() []byte { return m.raw }

// ErrMetadata is wrapped by every metadata error.
var ErrMetadata = errors.New("sgxsdk: metadata")

func metaErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMetadata, fmt.Sprintf(format, a...))
}

// ParseMetadataBlock parses the metadata block of a signed enclave (the
// .note.sgxmeta descriptor): the primary metadata followed by any compatible
// copies, each found at the end of the previous one.
func ParseMetadataBlock(block []byte) ([]*Metadata, error) {
	var out []*Metadata
	off := 0
	for off+16 <= len(block) {
		magic := binary.LittleEndian.Uint64(block[off:])
		if magic != MetadataMagic {
			break
		}
		m, err := ParseMetadata(block[off:])
		if err != nil {
			return nil, fmt.Errorf("metadata %d at offset %#x: %w", len(out), off, err)
		}
		out = append(out, m)
		off += m.Size()
	}
	if len(out) == 0 {
		return nil, metaErr("no metadata (magic not found): the enclave is not signed")
	}
	return out, nil
}

// ParseMetadata parses one metadata structure at the start of b, checking
// every offset and size it contains.
func ParseMetadata(b []byte) (*Metadata, error) {
	le := binary.LittleEndian
	if len(b) < metadataHeader {
		return nil, metaErr("%d bytes, shorter than the %d-byte header", len(b), metadataHeader)
	}
	if le.Uint64(b) != MetadataMagic {
		return nil, metaErr("bad magic %#x", le.Uint64(b))
	}
	size := le.Uint32(b[16:])
	if size < metadataHeader || uint64(size) > uint64(len(b)) {
		return nil, metaErr("size %#x out of range [%#x, %#x]", size, metadataHeader, len(b))
	}
	raw := b[:size]
	css, err := sgx.ParseSigstruct(raw[64 : 64+sgx.SigstructSize])
	if err != nil {
		return nil, metaErr("enclave_css: %v", err)
	}
	m := &Metadata{
		Version:           le.Uint64(raw[8:]),
		TCSPolicy:         le.Uint32(raw[20:]),
		SSAFrameSize:      le.Uint32(raw[24:]),
		MaxSaveBufferSize: le.Uint32(raw[28:]),
		DesiredMiscSelect: le.Uint32(raw[32:]),
		TCSMinPool:        le.Uint32(raw[36:]),
		EnclaveSize:       le.Uint64(raw[40:]),
		Attributes:        sgx.Attributes{Flags: le.Uint64(raw[48:]), Xfrm: le.Uint64(raw[56:])},
		Sigstruct:         css,
		raw:               raw,
	}
	dir := func(i int) (uint32, uint32, error) {
		off, n := le.Uint32(raw[1872+8*i:]), le.Uint32(raw[1876+8*i:])
		if !m.isMetadataBuffer(off, n) {
			return 0, 0, metaErr("directory %d (offset %#x, size %#x) outside the metadata", i, off, n)
		}
		return off, n, nil
	}
	poff, psize, err := dir(0)
	if err != nil {
		return nil, err
	}
	loff, lsize, err := dir(1)
	if err != nil {
		return nil, err
	}
	if psize%patchSize != 0 || lsize%layoutSize != 0 {
		return nil, metaErr("patch table (%d bytes) or layout table (%d bytes) not a whole number of entries", psize, lsize)
	}
	for o := poff; o < poff+psize; o += patchSize {
		p := Patch{le.Uint64(raw[o:]), le.Uint32(raw[o+8:]), le.Uint32(raw[o+12:])}
		if !m.isMetadataBuffer(p.Src, p.Size) {
			return nil, metaErr("patch %d: source %#x+%#x outside the metadata", len(m.Patches), p.Src, p.Size)
		}
		m.Patches = append(m.Patches, p)
	}
	for o := loff; o < loff+lsize; o += layoutSize {
		m.Layouts = append(m.Layouts, parseLayout(raw[o:]))
	}
	if err := m.parseExtend(); err != nil {
		return nil, err
	}
	return m, nil
}

// Newer SDKs (metadata 3.2 and later, 1.5 and later for SDK 1.9 loaders,
// and the ELRANGE versions 11.x/13.x) add two directories: the ELRANGE
// configuration and a table of extend entries. The ELRANGE only moves the
// enclave's base, which the measurement does not include. An extend entry
// of type "shared object" (a FIPS provider DSO loaded into the enclave)
// adds segments that this loader does not replay, so such an enclave is
// refused rather than mis-measured.
const (
	extendEntrySize         = 16
	extendEntrySharedObject = 0x1002
	majorVersionGap         = 10
)

func hasExtendEntries(version uint64) bool {
	major, minor := (version>>32)%majorVersionGap, uint32(version)
	switch major {
	case 2:
		return false
	case 1:
		return minor >= 5
	case 3:
		return minor >= 2
	}
	return false
}

func (m *Metadata) parseExtend() error {
	if !hasExtendEntries(m.Version) || len(m.raw) < metadataHeader+16 {
		return nil
	}
	le := binary.LittleEndian
	off, n := le.Uint32(m.raw[1896:]), le.Uint32(m.raw[1900:])
	if n == 0 {
		return nil
	}
	if !m.isMetadataBuffer(off, n) || n%extendEntrySize != 0 {
		return metaErr("extend entry table %#x+%#x outside the metadata", off, n)
	}
	for o := off; o < off+n; o += extendEntrySize {
		if le.Uint32(m.raw[o:]) == extendEntrySharedObject {
			return metaErr("the enclave embeds a shared object (extend entry %#x, a FIPS provider); loading such enclaves is not supported", extendEntrySharedObject)
		}
	}
	return nil
}

// isMetadataBuffer mirrors the loader's bounds check of a range inside the
// metadata's data area.
func (m *Metadata) isMetadataBuffer(off, n uint32) bool {
	if off < metadataHeader || uint64(off) >= uint64(len(m.raw)) {
		return false
	}
	end := uint64(off) + uint64(n)
	return end <= uint64(len(m.raw))
}

// Validate applies the checks the SDK loader makes before loading
// (CLoader::validate_metadata): TCS policy, SSA frame size, a power-of-two
// enclave size, and a layout table whose ranges are page-aligned, inside the
// enclave and not overlapping, and patches that fit.
func (m *Metadata) Validate() error {
	if m.TCSPolicy > 1 {
		return metaErr("tcs_policy %d is not BIND (0) or UNBIND (1)", m.TCSPolicy)
	}
	if m.SSAFrameSize < 1 || m.SSAFrameSize > 4 {
		return metaErr("ssa_frame_size %d out of range [1, 4]", m.SSAFrameSize)
	}
	if s := m.EnclaveSize; s == 0 || s > enclaveMaxSize || s&(s-1) != 0 {
		return metaErr("enclave_size %#x is not a power of two up to %#x", s, uint64(enclaveMaxSize))
	}
	// Bound the expansion before making it: a hostile table could ask for
	// billions of ranges. A million covers any real thread count.
	const maxRanges = 1 << 20
	total := uint64(0)
	for _, l := range m.Layouts {
		if l.IsGroup() {
			total += uint64(l.LoadTimes()) * uint64(l.EntryCount())
		} else {
			total++
		}
		if total > maxRanges {
			return metaErr("layout table expands to more than %d page ranges", maxRanges)
		}
	}
	type rng struct{ rva, size uint64 }
	rs := make([]rng, 0, total)
	for i, l := range m.Layouts {
		if !l.IsGroup() {
			if l.ContentOffset != 0 && !m.isMetadataBuffer(l.ContentOffset, l.ContentSize) {
				return metaErr("layout %d: content %#x+%#x outside the metadata", i, l.ContentOffset, l.ContentSize)
			}
			rs = append(rs, rng{l.RVA, uint64(l.PageCount) * pageSize})
			continue
		}
		if l.EntryCount() > i {
			return metaErr("layout %d: group repeats %d entries, only %d precede it", i, l.EntryCount(), i)
		}
		if l.EntryCount() == 0 {
			continue // repeats nothing
		}
		var step uint64
		for range l.LoadTimes() {
			step += l.LoadStep()
			if step > m.EnclaveSize {
				return metaErr("layout %d: group steps beyond the enclave size", i)
			}
			for _, e := range m.Layouts[i-l.EntryCount() : i] {
				if e.IsGroup() {
					return metaErr("layout %d: group contains another group", i)
				}
				rs = append(rs, rng{e.RVA + step, uint64(e.PageCount) * pageSize})
			}
		}
	}
	sortRanges(rs, func(a, b rng) bool { return a.rva < b.rva || a.rva == b.rva && a.size < b.size })
	for i, r := range rs {
		if r.rva%pageSize != 0 {
			return metaErr("layout range at %#x is not page-aligned", r.rva)
		}
		if r.rva >= m.EnclaveSize || r.rva+r.size > m.EnclaveSize {
			return metaErr("layout range %#x+%#x outside the enclave size %#x", r.rva, r.size, m.EnclaveSize)
		}
		if i+1 < len(rs) && r.rva+r.size > rs[i+1].rva {
			return metaErr("layout ranges at %#x and %#x overlap", r.rva, rs[i+1].rva)
		}
	}
	for i, p := range m.Patches {
		if p.Dst >= m.EnclaveSize || p.Dst+uint64(p.Size) > m.EnclaveSize {
			return metaErr("patch %d: destination %#x+%#x outside the enclave", i, p.Dst, p.Size)
		}
	}
	return nil
}
