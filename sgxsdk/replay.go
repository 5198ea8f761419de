package sgxsdk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// loader replays how the SDK's untrusted runtime (psw/urts/loader.cpp)
// builds an enclave from its file and metadata, appending each page's
// records to a measurement. Pages are hashed as they are produced; the file
// is read in place, with the metadata's patches overlaid page by page, so
// the image is never copied.
type loader struct {
	ctx    context.Context
	elf    *ELF
	meta   *Metadata
	mage   []byte // content measured for the .sgx_mage pages
	h      *measure.Hash
	page   [pageSize]byte // scratch page
	fill   [pageSize]byte // scratch for fill-pattern pages
	zero   [pageSize]byte
	reloc  map[uint64]bool // pages with relocations (only with DT_TEXTREL)
	mageLo uint64
	mageHi uint64
	pages  uint64 // pages added, for cancellation checks

	// What hardware would fault on: a page outside [0, enclave_size) (EADD
	// outside ELRANGE) or a page added twice.
	spans pageSpans
	what  string // the segment or layout entry being added, for errors
	inSeg bool   // adding a PT_LOAD segment: its .sgx_mage pages come last
}

// ErrLayout is wrapped when a load would add a page outside the enclave,
// add a page twice, or lay a segment or layout entry over the .sgx_mage
// pages: real hardware faults on each (EADD outside ELRANGE, or on a page
// already in the EPC).
var ErrLayout = errors.New("sgxsdk: enclave layout")

// pageSpans is a sorted list of disjoint page ranges [lo, hi).
type pageSpans struct{ s [][2]uint64 }

// add records [lo, hi), or reports the range it overlaps.
func (p *pageSpans) add(lo, hi uint64) ([2]uint64, bool) {
	i, _ := slices.BinarySearchFunc(p.s, lo, func(x [2]uint64, v uint64) int { return cmp.Compare(x[0], v) })
	if i > 0 && p.s[i-1][1] > lo {
		return p.s[i-1], false
	}
	if i < len(p.s) && p.s[i][0] < hi {
		return p.s[i], false
	}
	switch {
	case i > 0 && p.s[i-1][1] == lo && i < len(p.s) && p.s[i][0] == hi:
		p.s[i-1][1] = p.s[i][1]
		p.s = slices.Delete(p.s, i, i+1)
	case i > 0 && p.s[i-1][1] == lo:
		p.s[i-1][1] = hi
	case i < len(p.s) && p.s[i][0] == hi:
		p.s[i][0] = lo
	default:
		p.s = slices.Insert(p.s, i, [2]uint64{lo, hi})
	}
	return [2]uint64{}, true
}

// place records n pages at rva as added, refusing pages outside the
// enclave and pages added before.
func (l *loader) place(rva, n uint64) error {
	end := rva + n*pageSize
	if end < rva || end > l.meta.EnclaveSize {
		return fmt.Errorf("%w: %s: pages [%#x, %#x) run outside the enclave [0, %#x)", ErrLayout, l.what, rva, end, l.meta.EnclaveSize)
	}
	if o, ok := l.spans.add(rva, end); !ok {
		return fmt.Errorf("%w: %s: pages [%#x, %#x) overlap pages [%#x, %#x) added before (a page cannot be added twice)", ErrLayout, l.what, rva, end, o[0], o[1])
	}
	return nil
}

// inMage reports whether the page at rva overlaps the .sgx_mage section.
// Only the segment that holds the section may: its pages are added last.
func (l *loader) inMage(rva uint64) (bool, error) {
	if rva < l.mageHi && rva+pageSize > l.mageLo {
		if !l.inSeg {
			return true, fmt.Errorf("%w: %s: page %#x overlaps the %s section", ErrLayout, l.what, rva, MageSectionName)
		}
		return true, nil
	}
	return false, nil
}

func newLoader(ctx context.Context, e *ELF, m *Metadata, mage []byte) *loader {
	l := &loader{ctx: ctx, elf: e, meta: m, mage: mage, h: measure.New()}
	if e.Mage != nil {
		l.mageLo, l.mageHi = e.Mage.Addr, e.Mage.Addr+e.Mage.Size
	}
	if e.HasTextRel {
		l.reloc = map[uint64]bool{}
		for _, p := range e.relocPages {
			l.reloc[p] = true
		}
	}
	return l
}

// run measures everything but the .sgx_mage pages: ECREATE, the segments,
// and the layout. The measurement state afterwards is what genmage records.
func (l *loader) run() error {
	if err := l.meta.Validate(); err != nil {
		return err
	}
	l.h.ECreate(l.meta.SSAFrameSize, l.meta.EnclaveSize)
	if l.elf.Mage != nil {
		l.what = MageSectionName + " section"
		if err := l.place(l.mageLo, (l.mageHi-l.mageLo)/pageSize); err != nil {
			return err
		}
	}
	l.inSeg = true
	for _, s := range l.elf.Segments {
		l.what = fmt.Sprintf("PT_LOAD segment %d", s.Index)
		if err := l.segment(s); err != nil {
			return err
		}
	}
	l.inSeg = false
	return l.contexts(l.meta.Layouts, 0)
}

// measure runs the whole load, the .sgx_mage pages last, and returns
// MRENCLAVE.
func (l *loader) measure() (sgx.Measurement, error) {
	if err := l.run(); err != nil {
		return sgx.Measurement{}, err
	}
	if err := l.magePages(); err != nil {
		return sgx.Measurement{}, err
	}
	return l.h.Sum(), nil
}

// prefix runs the load up to the .sgx_mage pages and returns the state.
func (l *loader) prefix() (measure.State, error) {
	if err := l.run(); err != nil {
		return measure.State{}, err
	}
	return l.h.State(), nil
}

// magePages adds the .sgx_mage pages last (build_mage_pages), each as a
// regular read-only page with its content. The prototype passes the first
// page's content for every page of a multi-page section; we add each page
// with its own content, which is what the enclave's memory must hold.
func (l *loader) magePages() error {
	if l.elf.Mage == nil {
		return nil
	}
	if uint64(len(l.mage)) != l.elf.Mage.Size {
		return fmt.Errorf("%w: %s content of %d bytes for a %d-byte section", ErrELF, MageSectionName, len(l.mage), l.elf.Mage.Size)
	}
	for off := uint64(0); off < l.elf.Mage.Size; off += pageSize {
		l.h.AddPage(l.elf.Mage.Addr+off, 0x201, l.mage[off:off+pageSize])
	}
	return nil
}

// add adds the page at rva unless it overlaps the .sgx_mage section, which
// is added last (build_pages).
func (l *loader) add(rva, flags uint64, attr uint16, page []byte) error {
	if attr&AttrEADD == 0 {
		return nil
	}
	if in, err := l.inMage(rva); in {
		return err
	}
	if flags&^siExternal != 0 {
		return fmt.Errorf("%w: SECINFO flags %#x at %#x have reserved bits", ErrMetadata, flags, rva)
	}
	if l.pages++; l.pages%4096 == 0 && l.ctx.Err() != nil {
		return l.ctx.Err()
	}
	if err := l.place(rva, 1); err != nil {
		return err
	}
	if attr&(AttrEADD|AttrEEXTEND) != AttrEADD|AttrEEXTEND {
		l.h.EAdd(rva, flags)
		return nil
	}
	if page == nil {
		page = l.zero[:]
	}
	l.h.AddPage(rva, flags, page)
	return nil
}

// addRange adds n unmeasured pages from rva, skipping any that overlap the
// .sgx_mage section, with the checks of add.
func (l *loader) addRange(rva, n, flags uint64) error {
	if flags&^siExternal != 0 {
		return fmt.Errorf("%w: SECINFO flags %#x at %#x have reserved bits", ErrMetadata, flags, rva)
	}
	for n > 0 {
		if l.ctx.Err() != nil {
			return l.ctx.Err()
		}
		if in, err := l.inMage(rva); in {
			if err != nil {
				return err
			}
			rva, n = rva+pageSize, n-1
			continue
		}
		// Run up to the .sgx_mage section or at most 4096 pages.
		k := min(n, 4096)
		if l.mageHi > l.mageLo && rva < l.mageLo {
			k = min(k, (l.mageLo-rva+pageSize-1)/pageSize)
		}
		if err := l.place(rva, k); err != nil {
			return err
		}
		l.h.EAddRange(rva, k, flags)
		l.pages += k
		rva, n = rva+k*pageSize, n-k
	}
	return nil
}

// fileRange returns file bytes [off, off+n) with the metadata's patches
// applied. It copies into the scratch page only when a patch overlaps.
func (l *loader) fileRange(off, n uint64) []byte {
	src := l.elf.data[off : off+n]
	var out []byte
	for _, p := range l.meta.Patches {
		lo, hi := max(off, p.Dst), min(off+n, p.Dst+uint64(p.Size))
		if lo >= hi {
			continue
		}
		if out == nil {
			out = l.page[:n]
			copy(out, src)
		}
		s := uint64(p.Src) + (lo - p.Dst)
		copy(out[lo-off:hi-off], l.meta.raw[s:s+(hi-lo)])
	}
	if out == nil {
		return src
	}
	return out
}

// segment adds a PT_LOAD segment page by page (build_mem_region).
func (l *loader) segment(s Segment) error {
	return l.memRegion(s.VAddr, s.MemSize, s.FileSize, s.SecinfoFlags(), func(off, n uint64) []byte {
		return l.fileRange(s.Offset+off, n)
	}, true)
}

// memRegion adds the pages of a region whose first rawSize bytes come from
// data and the rest, up to virtSize, are zero.
func (l *loader) memRegion(rva0, virtSize, rawSize, flags uint64, data func(off, n uint64) []byte, useReloc bool) error {
	var off uint64
	for off < rawSize {
		rva := rva0 + off
		inPage := rva % pageSize
		n := min(pageSize-inPage, rawSize-off)
		f := flags
		if useReloc && l.reloc[rva/pageSize] && f&0x2 == 0 {
			f |= 0x2
		}
		if n == pageSize {
			if err := l.add(rva, f, AttrEADD|AttrEEXTEND, data(off, n)); err != nil {
				return err
			}
		} else {
			chunk := data(off, n)
			var pg [pageSize]byte
			copy(pg[inPage:], chunk)
			if err := l.add(rva-inPage, f, AttrEADD|AttrEEXTEND, pg[:]); err != nil {
				return err
			}
		}
		off += pageSize - inPage
	}
	if virtSize > off {
		rva := rva0 + off
		size := roundUp(virtSize-off+rva%pageSize, pageSize)
		rva -= rva % pageSize
		for p := uint64(0); p < size; p += pageSize {
			if err := l.add(rva+p, flags, AttrEADD|AttrEEXTEND, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// contexts adds the layout entries, expanding groups (build_contexts).
func (l *loader) contexts(ls []Layout, delta uint64) error {
	for i, e := range ls {
		if !e.IsGroup() {
			if err := l.context(delta, e); err != nil {
				return err
			}
			continue
		}
		if e.EntryCount() > i {
			return fmt.Errorf("%w: layout %d: group repeats %d entries, only %d precede it", ErrMetadata, i, e.EntryCount(), i)
		}
		if e.EntryCount() == 0 {
			continue // repeats nothing
		}
		var step uint64
		for range e.LoadTimes() {
			step += e.LoadStep()
			if err := l.contexts(ls[i-e.EntryCount():i], delta+step); err != nil {
				return err
			}
		}
	}
	return nil
}

// context adds one layout entry (build_context).
func (l *loader) context(delta uint64, e Layout) error {
	if e.Attributes&AttrEADD == 0 {
		return nil
	}
	l.what = fmt.Sprintf("layout entry %#x at %#x", e.ID, delta+e.RVA)
	rva := delta + e.RVA
	n := uint64(e.PageCount)
	switch {
	case e.ContentOffset != 0 && e.SIFlags == siTCS:
		tcs := l.page[:]
		clear(tcs)
		copy(tcs, l.meta.raw[e.ContentOffset:e.ContentOffset+e.ContentSize])
		addLE64(tcs[16:], rva) // ossa
		addLE64(tcs[48:], rva) // ofs_base
		addLE64(tcs[56:], rva) // ogs_base
		var pg [pageSize]byte
		copy(pg[:], tcs)
		for p := uint64(0); p < n; p++ {
			if err := l.add(rva+p*pageSize, e.SIFlags, e.Attributes, pg[:]); err != nil {
				return err
			}
		}
	case e.ContentOffset != 0:
		content := l.meta.raw[e.ContentOffset : e.ContentOffset+e.ContentSize]
		return l.memRegion(rva, n*pageSize, uint64(len(content)), e.SIFlags, func(off, k uint64) []byte {
			return content[off : off+k]
		}, false)
	case e.SIFlags != siNone && e.Attributes&(AttrEADD|AttrEEXTEND) == AttrEADD:
		// Added but not measured (heap, reserved memory): EADD records
		// only, hashed in batches.
		return l.addRange(rva, n, e.SIFlags)
	case e.SIFlags != siNone:
		var src []byte
		if e.ContentSize != 0 {
			for i := 0; i < pageSize; i += 4 {
				l.fill[i], l.fill[i+1], l.fill[i+2], l.fill[i+3] = byte(e.ContentSize), byte(e.ContentSize>>8), byte(e.ContentSize>>16), byte(e.ContentSize>>24)
			}
			src = l.fill[:]
		}
		for p := uint64(0); p < n; p++ {
			if err := l.add(rva+p*pageSize, e.SIFlags, e.Attributes, src); err != nil {
				return err
			}
		}
	}
	return nil
}

func addLE64(b []byte, v uint64) {
	x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	x += v
	for i := range 8 {
		b[i] = byte(x >> (8 * i))
	}
}
