package sgxsdk

import (
	"encoding/binary"

	"github.com/magesgx/mage/sgx"
)

// Constants of the SDK 2.6 signer (manage_metadata.h, arch.h, util.h).
const (
	ssaNum             = 2
	ssaFrameSize       = 1
	maxSaveBufSize     = 2632
	guardPages         = 0x10000 / pageSize // SE_GUARD_PAGE_SIZE
	stackFill          = 0xCCCCCCCC
	globalDataSize     = 1632 // sizeof(global_data_t) on x86-64
	layoutEntryNum     = 42   // LAYOUT_ENTRY_NUM: layouts global_data_t holds
	ssaGPRSize         = 184  // sizeof(ssa_gpr_t)
	xfrmLegacy         = 0x3
	xfrmAVX            = 0x6
	xfrmMPX            = 0x18
	xfrmAVX512         = 0xE6
	xfrmReserved       = ^uint64(xfrmLegacy | xfrmAVX | xfrmAVX512)
	tdTLSAddrOffset    = 80 // offsetof(thread_data_t, tls_addr)
	threadDataSize     = 160
	globalDataTDOffset = 48
)

// metaBuilder lays out a metadata structure in the order the SDK signer
// allocates from it, so offsets come out identical.
type metaBuilder struct {
	buf  []byte // MetadataBlockSize bytes
	size uint32
}

func (b *metaBuilder) alloc(n uint32) (uint32, error) {
	off := b.size
	if uint64(b.size)+uint64(n) > MetadataBlockSize {
		return 0, metaErr("metadata does not fit in %#x bytes", MetadataBlockSize)
	}
	b.size += n
	return off, nil
}

// built is the metadata the signer builds for an enclave and config, with
// the values the global data template needs.
type built struct {
	meta       *Metadata
	block      []byte // MetadataBlockSize bytes; meta.raw aliases its start
	heapInit   uint64
	rsrvInit   uint64
	stackMax   uint64
	stackMin   uint64
	gdTemplate uint32 // offset of the global data template in the metadata
}

// buildMetadata builds the primary metadata (version 2.4) the SDK 2.6
// signer derives from the enclave and its config, with an unsigned
// SIGSTRUCT (no enclave hash, date, key or signature).
func buildMetadata(e *ELF, c *Config) (*built, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	bd := &built{block: make([]byte, MetadataBlockSize)}
	b := &metaBuilder{buf: bd.block, size: metadataHeader}
	m := &Metadata{
		Version:           Version2_4,
		TCSPolicy:         uint32(c.TCSPolicy),
		SSAFrameSize:      ssaFrameSize,
		MaxSaveBufferSize: maxSaveBufSize,
		TCSMinPool:        uint32(c.TCSMinPool),
		Sigstruct:         cssFromConfig(c),
	}
	css := m.Sigstruct
	// metadata.attributes: flags as in SIGSTRUCT; xfrm = bits not checked
	// by the mask, plus the checked bits that are set.
	m.Attributes.Flags = css.Attributes.Flags
	m.Attributes.Xfrm = ^css.AttributeMask.Xfrm | css.Attributes.Xfrm&css.AttributeMask.Xfrm
	bd.heapInit, bd.rsrvInit = c.heapInit(), c.rsrvInit()
	bd.stackMax, bd.stackMin = c.StackMaxSize, c.StackMinSize

	// Layout table (build_layout_table).
	tcsTemplate, err := b.alloc(tcsTemplateSize)
	if err != nil {
		return nil, err
	}
	var layouts []Layout
	add := func(l Layout) { layouts = append(layouts, l) }
	add(Layout{ID: LayoutHeapMin, PageCount: uint32(c.HeapMinSize / pageSize), Attributes: AttrEADD, SIFlags: siRW})
	if bd.heapInit > c.HeapMinSize {
		add(Layout{ID: LayoutHeapInit, PageCount: uint32((bd.heapInit - c.HeapMinSize) / pageSize), Attributes: AttrEADD | AttrPostRemove | AttrPostAdd, SIFlags: siRW})
	}
	if c.HeapMaxSize > bd.heapInit {
		add(Layout{ID: LayoutHeapMax, PageCount: uint32((c.HeapMaxSize - bd.heapInit) / pageSize), Attributes: AttrPostAdd, SIFlags: siRW})
	}
	guard := Layout{ID: LayoutGuard, PageCount: guardPages}
	thread := []Layout{guard}
	if c.StackMaxSize > c.StackMinSize {
		thread = append(thread, Layout{ID: LayoutStackMax, PageCount: uint32((c.StackMaxSize - c.StackMinSize) / pageSize),
			Attributes: AttrEADD | AttrEEXTEND | AttrGrowDown, SIFlags: siRW, ContentSize: stackFill})
	}
	thread = append(thread,
		Layout{ID: LayoutStackMin, PageCount: uint32(c.StackMinSize / pageSize), Attributes: AttrEADD | AttrEEXTEND, SIFlags: siRW, ContentSize: stackFill},
		guard,
		Layout{ID: LayoutTCS, PageCount: 1, Attributes: AttrEADD | AttrEEXTEND, SIFlags: siTCS, ContentOffset: tcsTemplate, ContentSize: tcsTemplateSize},
		Layout{ID: LayoutSSA, PageCount: ssaFrameSize * ssaNum, Attributes: AttrEADD | AttrEEXTEND, SIFlags: siRW},
		guard,
	)
	td := Layout{ID: LayoutTD, PageCount: 1, Attributes: AttrEADD | AttrEEXTEND, SIFlags: siRW}
	if e.TLS != nil {
		td.PageCount += uint32(roundUp(e.TLS.MemSize, pageSize) / pageSize)
	}
	thread = append(thread, td)
	// The utility thread: part of its stack can be added and removed
	// dynamically.
	for _, l := range thread {
		if l.ID == LayoutStackMax {
			l.Attributes |= AttrPostAdd | AttrPostRemove
		}
		add(l)
	}
	tcsNum, tcsMaxNum := c.TCSNum, c.tcsMax()
	minPool, eremove := c.TCSMinPool, uint64(0)
	if minPool > tcsNum-1 {
		minPool = tcsNum - 1
	} else {
		eremove = tcsNum - 1 - minPool
	}
	group := func(id uint16, times uint64) {
		add(Layout{ID: id, Attributes: uint16(len(thread)), PageCount: uint32(times)})
	}
	if minPool > 0 {
		for _, l := range thread {
			add(l)
		}
		if minPool > 1 {
			group(LayoutThreadGroup, minPool-1)
		}
	}
	if eremove > 0 {
		for _, l := range thread {
			if l.ID != LayoutGuard {
				l.Attributes |= AttrEREMOVE
			}
			add(l)
		}
		if eremove > 1 {
			group(LayoutThreadGroup, eremove-1)
		}
	}
	if tcsMaxNum > minPool+1 {
		for _, l := range thread {
			switch {
			case l.ID == LayoutStackMax:
				l.ID = LayoutHeapDynMin - LayoutHeapMin + l.ID
				l.Attributes = AttrPostAdd | AttrGrowDown
			case l.ID != LayoutGuard:
				l.ID = LayoutHeapDynMin - LayoutHeapMin + l.ID
				l.Attributes = AttrPostAdd | AttrDynThread
			}
			add(l)
		}
		group(LayoutDynGroup, tcsMaxNum-minPool-1)
	}
	if c.RsrvMinSize > 0 || bd.rsrvInit > 0 || c.RsrvMaxSize > 0 {
		add(Layout{ID: LayoutRsrvMin, PageCount: uint32(c.RsrvMinSize / pageSize), Attributes: AttrEADD, SIFlags: siRW})
		if bd.rsrvInit > c.RsrvMinSize {
			add(Layout{ID: LayoutRsrvInit, PageCount: uint32((bd.rsrvInit - c.RsrvMinSize) / pageSize), Attributes: AttrEADD | AttrPostRemove | AttrPostAdd, SIFlags: siRW})
		}
		if c.RsrvMaxSize > bd.rsrvInit {
			add(Layout{ID: LayoutRsrvMax, PageCount: uint32((c.RsrvMaxSize - bd.rsrvInit) / pageSize), Attributes: AttrPostAdd, SIFlags: siRW})
		}
	}
	// Assign RVAs after the image (update_layout_entries).
	rva := imageEnd(e)
	if rva == 0 {
		return nil, elfErr("image has no loadable content")
	}
	for i := range layouts {
		l := &layouts[i]
		if !l.IsGroup() {
			l.RVA = rva
			rva += uint64(l.PageCount) * pageSize
			continue
		}
		for j := 1; j <= l.EntryCount(); j++ {
			l.RVA += uint64(layouts[i-j].PageCount) * pageSize
		}
		rva += uint64(l.LoadTimes()) * l.LoadStep()
	}

	// Patch table (build_patch_table): the global data template over
	// g_global_data, and the section-header fields of the ELF header zeroed.
	gdRVA := e.Symbols["g_global_data"]
	if gdRVA == 0 {
		return nil, elfErr("symbol g_global_data not found (link the enclave with the SDK's trusted runtime)")
	}
	gdOff, err := b.alloc(globalDataSize)
	if err != nil {
		return nil, err
	}
	bd.gdTemplate = gdOff
	gdDst, ok := rawOffsetOfRVA(e, gdRVA)
	if !ok {
		return nil, elfErr("symbol g_global_data at %#x is not in a loaded segment", gdRVA)
	}
	zero, err := b.alloc(8)
	if err != nil {
		return nil, err
	}
	m.Patches = []Patch{
		{Dst: gdDst, Src: gdOff, Size: globalDataSize},
		{Dst: 60, Src: zero, Size: 2}, // e_shnum
		{Dst: 40, Src: zero, Size: 8}, // e_shoff
		{Dst: 62, Src: zero, Size: 2}, // e_shstrndx
	}
	patchOff, err := b.alloc(uint32(len(m.Patches) * patchSize))
	if err != nil {
		return nil, err
	}

	// Enclave size: the next power of two; the slack becomes a guard entry
	// or grows a trailing reserved-memory entry (build_layout_entries).
	if rva > enclaveMaxSize {
		return nil, elfErr("enclave of %#x bytes exceeds the maximum %#x", rva, uint64(enclaveMaxSize))
	}
	size := uint64(1)
	for size < rva {
		size <<= 1
	}
	if size > enclaveMaxSize {
		return nil, elfErr("enclave of %#x bytes exceeds the maximum %#x", rva, uint64(enclaveMaxSize))
	}
	m.EnclaveSize = size
	if extra := (size - rva) / pageSize; extra > 0 {
		last := &layouts[len(layouts)-1]
		if last.ID == LayoutRsrvInit || last.ID == LayoutRsrvMax || last.ID == LayoutRsrvMin && last.PageCount > 0 {
			last.PageCount += uint32(extra)
			switch last.ID {
			case LayoutRsrvMax:
				// rsrv_max grows; not used by the template.
			default:
				// The SDK's condition here is always true: the init size
				// grows whichever trailing entry took the slack.
				bd.rsrvInit += extra * pageSize
			}
		} else {
			layouts = append(layouts, Layout{ID: LayoutGuard, RVA: rva, PageCount: uint32(extra)})
		}
	}
	layoutOff, err := b.alloc(uint32(len(layouts) * layoutSize))
	if err != nil {
		return nil, err
	}
	m.Layouts = layouts

	// Serialise.
	raw := bd.block[:b.size]
	m.raw = raw
	le := binary.LittleEndian
	le.PutUint32(raw[1872:], patchOff)
	le.PutUint32(raw[1876:], uint32(len(m.Patches)*patchSize))
	le.PutUint32(raw[1880:], layoutOff)
	le.PutUint32(raw[1884:], uint32(len(layouts)*layoutSize))
	for i, p := range m.Patches {
		o := patchOff + uint32(i*patchSize)
		le.PutUint64(raw[o:], p.Dst)
		le.PutUint32(raw[o+8:], p.Src)
		le.PutUint32(raw[o+12:], p.Size)
	}
	for i, l := range layouts {
		l.put(raw[layoutOff+uint32(i*layoutSize):])
	}
	bd.meta = m
	if err := bd.writeTCSTemplate(e, tcsTemplate); err != nil {
		return nil, err
	}
	if err := bd.writeGlobalData(e); err != nil {
		return nil, err
	}
	m.writeHeader()
	return bd, nil
}

// writeHeader writes the header fields and SIGSTRUCT into raw.
func (m *Metadata) writeHeader() {
	le := binary.LittleEndian
	raw := m.raw
	le.PutUint64(raw[0:], MetadataMagic)
	le.PutUint64(raw[8:], m.Version)
	le.PutUint32(raw[16:], uint32(len(raw)))
	le.PutUint32(raw[20:], m.TCSPolicy)
	le.PutUint32(raw[24:], m.SSAFrameSize)
	le.PutUint32(raw[28:], m.MaxSaveBufferSize)
	le.PutUint32(raw[32:], m.DesiredMiscSelect)
	le.PutUint32(raw[36:], m.TCSMinPool)
	le.PutUint64(raw[40:], m.EnclaveSize)
	le.PutUint64(raw[48:], m.Attributes.Flags)
	le.PutUint64(raw[56:], m.Attributes.Xfrm)
	copy(raw[64:], m.Sigstruct.Marshal())
}

func (m *Metadata) entry(id uint16) *Layout {
	for i := range m.Layouts {
		if m.Layouts[i].ID == id {
			return &m.Layouts[i]
		}
	}
	return nil
}

func (bd *built) writeTCSTemplate(e *ELF, off uint32) error {
	m := bd.meta
	tcs, ssa, td := m.entry(LayoutTCS), m.entry(LayoutSSA), m.entry(LayoutTD)
	entry := e.Symbols["enclave_entry"]
	if entry == 0 {
		return elfErr("no entry point (symbol enclave_entry or e_entry)")
	}
	t := bd.block[off : off+tcsTemplateSize]
	le := binary.LittleEndian
	le.PutUint64(t[16:], ssa.RVA-tcs.RVA)                    // ossa
	le.PutUint32(t[28:], ssaNum)                             // nssa
	le.PutUint64(t[32:], entry)                              // oentry
	fs := td.RVA - tcs.RVA + uint64(td.PageCount-1)*pageSize // TD is the last page
	le.PutUint64(t[48:], fs)                                 // ofs_base
	le.PutUint64(t[56:], fs)                                 // ogs_base
	le.PutUint32(t[64:], 0xFFFFFFFF)                         // ofs_limit
	le.PutUint32(t[68:], 0xFFFFFFFF)                         // ogs_limit
	return nil
}

// xsaveSize is the XSAVE area the trusted runtime reserves for xfrm.
func xsaveSize(xfrm uint64) (uint64, error) {
	if xfrm == 0 || xfrm&xfrmReserved != 0 {
		return 0, metaErr("xfrm %#x has reserved bits", xfrm)
	}
	size := uint64(0)
	for _, t := range []struct{ bits, size uint64 }{
		{xfrmLegacy, 512 + 64},
		{xfrmAVX, 512 + 64 + 256},
		{xfrmMPX, 512 + 64 + 256 + 256},
		{xfrmAVX512, 512 + 64 + 256 + 256 + 1600},
	} {
		if xfrm&t.bits == t.bits {
			size = t.size
		}
	}
	return size, nil
}

func (bd *built) writeGlobalData(e *ELF) error {
	m := bd.meta
	x, err := xsaveSize(m.Attributes.Xfrm)
	if err != nil {
		return err
	}
	tcs, ssa, td := m.entry(LayoutTCS), m.entry(LayoutSSA), m.entry(LayoutTD)
	stackMin, heap := m.entry(LayoutStackMin), m.entry(LayoutHeapMin)
	stackBase := stackMin.RVA + bd.stackMin - tcs.RVA // wraps, as size_t does
	stackLimit := stackBase - bd.stackMax
	ssaBase := ssa.RVA - tcs.RVA
	tdAddr := td.RVA - tcs.RVA + uint64(td.PageCount-1)*pageSize
	tlsAddr := td.RVA - tcs.RVA
	if e.TLS != nil {
		tlsAddr = tdAddr - e.TLS.MemSize
	}
	g := bd.block[bd.gdTemplate : bd.gdTemplate+globalDataSize]
	le := binary.LittleEndian
	le.PutUint64(g[0:], m.EnclaveSize)
	le.PutUint64(g[8:], heap.RVA)
	le.PutUint64(g[16:], bd.heapInit)
	if r := m.entry(LayoutRsrvMin); r != nil {
		le.PutUint64(g[24:], r.RVA)
		le.PutUint64(g[32:], bd.rsrvInit)
	}
	le.PutUint64(g[40:], uint64(m.TCSPolicy))
	t := g[globalDataTDOffset:]
	le.PutUint64(t[0:], tdAddr)                                              // self_addr
	le.PutUint64(t[8:], stackBase)                                           // last_sp
	le.PutUint64(t[16:], stackBase)                                          // stack_base_addr
	le.PutUint64(t[24:], stackLimit)                                         // stack_limit_addr
	le.PutUint64(t[32:], ssaBase+uint64(m.SSAFrameSize)*pageSize-ssaGPRSize) // first_ssa_gpr
	le.PutUint64(t[56:], x)                                                  // xsave_size
	le.PutUint64(t[80:], tlsAddr)                                            // tls_addr
	le.PutUint64(t[88:], tdAddr+tdTLSAddrOffset)                             // tls_array
	o := globalDataTDOffset + threadDataSize
	copy(g[o:o+tcsTemplateSize], m.raw[tcs.ContentOffset:tcs.ContentOffset+tcs.ContentSize])
	o += tcsTemplateSize
	if len(m.Layouts) > layoutEntryNum {
		return metaErr("%d layout entries, the trusted runtime's global data holds %d", len(m.Layouts), layoutEntryNum)
	}
	le.PutUint32(g[o:], uint32(len(m.Layouts)))
	o += 8
	for i, l := range m.Layouts {
		l.put(g[o+i*layoutSize:])
	}
	return nil
}

// imageEnd is the page-rounded end of the PT_LOAD segment with the highest
// address (calculate_sections_size).
func imageEnd(e *ELF) uint64 {
	var last *Segment
	for i := range e.Segments {
		if last == nil || e.Segments[i].VAddr > last.VAddr {
			last = &e.Segments[i]
		}
	}
	if last == nil {
		return 0
	}
	return roundUp(last.VAddr+last.MemSize, pageSize)
}

// rawOffsetOfRVA maps an RVA to its file offset the way the signer does
// (get_rawdata_by_rva): through the segment whose page range holds it.
func rawOffsetOfRVA(e *ELF, rva uint64) (uint64, bool) {
	for _, s := range e.Segments {
		lo, hi := s.VAddr/pageSize*pageSize, roundUp(s.VAddr+s.MemSize, pageSize)
		if lo <= rva && rva < hi {
			if rva < s.VAddr || rva-s.VAddr > s.FileSize {
				return 0, false
			}
			return s.Offset + (rva - s.VAddr), true
		}
	}
	return 0, false
}

// cssFromConfig fills the SIGSTRUCT header and body fields that come from
// the config (fill_enclave_css), for a 64-bit enclave.
func cssFromConfig(c *Config) *sgx.Sigstruct {
	s := sgx.NewSigstruct()
	if c.ReleaseType&1 != 0 {
		s.Type = 1 << 31
	}
	if c.IntelSigned&1 != 0 {
		s.ModuleVendor = 0x8086
	}
	s.HWVersion = uint32(c.HW)
	s.MiscSelect = uint32(c.MiscSelect)
	s.MiscMask = uint32(c.MiscMask)
	s.AttributeMask.Flags = ^sgx.AttrDebug
	if c.DisableDebug == 1 {
		s.AttributeMask.Flags |= sgx.AttrDebug
	}
	if c.ProvisionKey == 1 {
		s.Attributes.Flags |= sgx.AttrProvisionKey
		s.AttributeMask.Flags |= sgx.AttrProvisionKey
	}
	if c.LaunchKey == 1 {
		s.Attributes.Flags |= sgx.AttrEinitTokenKey
		s.AttributeMask.Flags |= sgx.AttrEinitTokenKey
	}
	if c.EnableKSS == 1 {
		s.Attributes.Flags |= sgx.AttrKSS
		s.AttributeMask.Flags |= sgx.AttrKSS
	}
	binary.LittleEndian.PutUint64(s.ISVExtProdID[0:], c.ISVExtProdIDL)
	binary.LittleEndian.PutUint64(s.ISVExtProdID[8:], c.ISVExtProdIDH)
	binary.LittleEndian.PutUint64(s.ISVFamilyID[0:], c.ISVFamilyIDL)
	binary.LittleEndian.PutUint64(s.ISVFamilyID[8:], c.ISVFamilyIDH)
	s.Attributes.Flags |= sgx.AttrMode64Bit
	s.AttributeMask.Flags |= sgx.AttrMode64Bit
	s.Attributes.Xfrm = xfrmLegacy
	s.AttributeMask.Xfrm = xfrmLegacy | xfrmReserved
	s.ISVProdID = uint16(c.ProdID)
	s.ISVSVN = uint16(c.ISVSVN)
	return s
}
