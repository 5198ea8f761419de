package sgxsdk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// maxSections bounds the section headers of an enclave (SDK enclaves have
// a few dozen), and with it the work of every walk over them.
const maxSections = 1024

// ErrELF is wrapped by every error about the enclave's ELF structure.
var ErrELF = errors.New("sgxsdk: enclave ELF")

func elfErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrELF, fmt.Sprintf(format, a...))
}

// ELF constants used by the SDK's enclave format.
const (
	ptLoad      = 1
	ptDynamic   = 2
	ptTLS       = 7
	pfX         = 1
	pfW         = 2
	pfR         = 4
	etDyn       = 3
	emX86_64    = 62
	shtNobits   = 8
	shfWrite    = 1
	ehdrSize    = 64
	phdrSize    = 56
	shdrSize    = 64
	symSize     = 24
	relaSize    = 24
	noteHdrSize = 12

	dtNull     = 0
	dtPltRelSz = 2
	dtStrTab   = 5
	dtSymTab   = 6
	dtRela     = 7
	dtRelaSz   = 8
	dtRel      = 17
	dtTextRel  = 22
	dtJmpRel   = 23
	dtNum      = 35

	rX86_64None     = 0
	rX86_64_64      = 1
	rX86_64GlobDat  = 6
	rX86_64JumpSlot = 7
	rX86_64Relative = 8
	rX86_64DTPMod64 = 16
	rX86_64DTPOff64 = 17
	rX86_64TPOff64  = 18
)

// Segment is a PT_LOAD or PT_TLS program header of the enclave.
type Segment struct {
	Index    int    // program header index
	Type     uint32 // PT_LOAD or PT_TLS
	Flags    uint32 // PF_R, PF_W, PF_X
	Offset   uint64 // file offset of the data
	VAddr    uint64 // RVA in the enclave
	FileSize uint64
	MemSize  uint64 // for PT_TLS, rounded up to the alignment as the SDK does
	Align    uint64
}

// SecinfoFlags returns the SECINFO flags the loader adds the segment's pages
// with: a regular page with the segment's R/W/X permissions.
func (s Segment) SecinfoFlags() uint64 {
	f := uint64(0x200)
	if s.Flags&pfR != 0 {
		f |= 0x1
	}
	if s.Flags&pfW != 0 {
		f |= 0x2
	}
	if s.Flags&pfX != 0 {
		f |= 0x4
	}
	return f
}

// Section is an ELF section header of interest.
type Section struct {
	Name   string
	Type   uint32
	Flags  uint64
	Addr   uint64
	Offset uint64
	Size   uint64
	Align  uint64
}

// ELF is a parsed SGX SDK enclave shared object. It keeps a reference to
// the file bytes; it never modifies them.
type ELF struct {
	data []byte

	Segments []Segment // PT_LOAD segments in program-header order
	TLS      *Segment  // the PT_TLS segment, if any

	// Metadata is where the signer writes the 0x5000-byte metadata block:
	// the descriptor of the "sgx_metadata" note in .note.sgxmeta.
	MetadataOffset uint64
	MetadataSize   uint64

	// Mage is the .sgx_mage section, if the enclave has one.
	Mage *Section

	Symbols map[string]uint64 // enclave_entry, g_global_data, g_global_data_sim, g_peak_heap_used

	HasTextRel  bool // DT_TEXTREL present (text relocations)
	HasInit     bool // a .init section is present
	sectionList []Section
	relocPages  []uint64 // pages touched by dynamic relocations, when HasTextRel
}

// Bytes returns the file the ELF was parsed from.
func (e *ELF) Bytes() []byte { return e.data }

// Sections returns the section headers.
func (e *ELF) Sections() []Section { return e.sectionList }

func (e *ELF) sectionByName(name string) *Section {
	for i := range e.sectionList {
		if e.sectionList[i].Name == name {
			return &e.sectionList[i]
		}
	}
	return nil
}

func (e *ELF) sectionByAddr(addr uint64) *Section {
	for i := range e.sectionList {
		if e.sectionList[i].Addr == addr {
			return &e.sectionList[i]
		}
	}
	return nil
}

// bytesAt returns data[off:off+n] or an error naming what was being read.
func (e *ELF) bytesAt(off, n uint64, what string) ([]byte, error) {
	end := off + n
	if end < off || end > uint64(len(e.data)) {
		return nil, elfErr("%s at file offset %#x, %d bytes: beyond the end of the %d-byte file", what, off, n, len(e.data))
	}
	return e.data[off:end], nil
}

// ParseELF parses an SGX SDK enclave (ELF64 x86-64 shared object) with the
// checks the SDK's loader makes, plus the .sgx_mage checks the prototype
// omits (page-aligned, a whole number of pages, read-only).
func ParseELF(data []byte) (*ELF, error) {
	e := &ELF{data: data, Symbols: map[string]uint64{}}
	if len(data) < ehdrSize {
		return nil, elfErr("file of %d bytes is shorter than an ELF header", len(data))
	}
	le := binary.LittleEndian
	switch {
	case !bytes.Equal(data[:4], []byte("\x7fELF")):
		return nil, elfErr("not an ELF file (bad magic)")
	case data[4] != 2:
		return nil, elfErr("ELF class %d, want 64-bit", data[4])
	case data[5] != 1:
		return nil, elfErr("ELF data encoding %d, want little-endian", data[5])
	case data[6] != 1:
		return nil, elfErr("ELF version %d, want 1", data[6])
	}
	if t := le.Uint16(data[16:]); t != etDyn {
		return nil, elfErr("e_type %d, want ET_DYN (a shared object)", t)
	}
	if m := le.Uint16(data[18:]); m != emX86_64 {
		return nil, elfErr("e_machine %d, want x86-64 (%d)", m, emX86_64)
	}
	entry := le.Uint64(data[24:])
	phoff, shoff := le.Uint64(data[32:]), le.Uint64(data[40:])
	phentsize, phnum := le.Uint16(data[54:]), le.Uint16(data[56:])
	shentsize, shnum, shstrndx := le.Uint16(data[58:]), le.Uint16(data[60:]), le.Uint16(data[62:])
	if phentsize != phdrSize {
		return nil, elfErr("e_phentsize %d, want %d", phentsize, phdrSize)
	}
	if shnum != 0 && shentsize != shdrSize {
		return nil, elfErr("e_shentsize %d, want %d", shentsize, shdrSize)
	}
	if err := e.parseSections(shoff, shnum, shstrndx); err != nil {
		return nil, err
	}
	phdrs, err := e.bytesAt(phoff, uint64(phnum)*phdrSize, "program headers")
	if err != nil {
		return nil, err
	}
	var dynamic *Segment
	type span struct{ lo, hi uint64 }
	var loads []span
	for i := range int(phnum) {
		p := phdrs[i*phdrSize:]
		s := Segment{
			Index:    i,
			Type:     le.Uint32(p[0:]),
			Flags:    le.Uint32(p[4:]),
			Offset:   le.Uint64(p[8:]),
			VAddr:    le.Uint64(p[16:]),
			FileSize: le.Uint64(p[32:]),
			MemSize:  le.Uint64(p[40:]),
			Align:    le.Uint64(p[48:]),
		}
		if end := s.Offset + s.FileSize; end < s.Offset || end > uint64(len(data)) {
			return nil, elfErr("program header %d: data at %#x+%#x beyond the end of the file", i, s.Offset, s.FileSize)
		}
		if s.FileSize > s.MemSize && (s.Type == ptLoad || s.Type == ptTLS) {
			return nil, elfErr("program header %d: p_filesz %#x exceeds p_memsz %#x", i, s.FileSize, s.MemSize)
		}
		switch s.Type {
		case ptLoad:
			if s.Align%pageSize != 0 {
				return nil, elfErr("PT_LOAD program header %d: alignment %#x is not a multiple of the page size", i, s.Align)
			}
			hi := s.VAddr + s.MemSize
			if s.Align != 0 {
				hi = roundUp(hi, s.Align)
			}
			if hi < s.VAddr || hi > enclaveMaxSize {
				return nil, elfErr("PT_LOAD program header %d: vaddr %#x + memsz %#x out of range", i, s.VAddr, s.MemSize)
			}
			cur := span{s.VAddr, hi - 1}
			for j, o := range loads {
				if cur.lo <= o.hi && o.lo <= cur.hi {
					return nil, elfErr("PT_LOAD program header %d overlaps PT_LOAD segment %d", i, j)
				}
			}
			loads = append(loads, cur)
			if s.SecinfoFlags() == 0x200 {
				return nil, elfErr("PT_LOAD program header %d has no R/W/X permission", i)
			}
			e.Segments = append(e.Segments, s)
		case ptTLS:
			if s.Align > 1 {
				s.MemSize = roundUp(s.MemSize, s.Align)
			}
			if s.SecinfoFlags() == 0x200 {
				return nil, elfErr("PT_TLS program header %d has no R/W/X permission", i)
			}
			t := s
			e.TLS = &t
		case ptDynamic:
			if dynamic == nil {
				d := s
				dynamic = &d
			}
		}
	}
	if len(e.Segments) == 0 {
		return nil, elfErr("no PT_LOAD segment")
	}
	if dynamic == nil {
		return nil, elfErr("no PT_DYNAMIC segment")
	}
	dyn, err := e.parseDynamic(dynamic)
	if err != nil {
		return nil, err
	}
	if err := e.parseSymbols(dyn, entry); err != nil {
		return nil, err
	}
	if err := e.checkRelocations(dyn); err != nil {
		return nil, err
	}
	if e.sectionByName(".ctors") != nil {
		return nil, elfErr("section .ctors is not supported by the SGX loader")
	}
	e.HasInit = e.sectionByName(".init") != nil
	if err := e.parseMetadataNote(); err != nil {
		return nil, err
	}
	if err := e.parseMage(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *ELF) parseSections(shoff uint64, shnum, shstrndx uint16) error {
	if shnum == 0 {
		return elfErr("no section headers (the SDK needs .note.sgxmeta and the dynamic symbol table)")
	}
	if shnum > maxSections {
		return elfErr("%d section headers, more than the %d an enclave may have", shnum, maxSections)
	}
	raw, err := e.bytesAt(shoff, uint64(shnum)*shdrSize, "section headers")
	if err != nil {
		return err
	}
	if shstrndx >= shnum {
		return elfErr("e_shstrndx %d out of range (%d sections)", shstrndx, shnum)
	}
	le := binary.LittleEndian
	strh := raw[int(shstrndx)*shdrSize:]
	strtab, err := e.bytesAt(le.Uint64(strh[24:]), le.Uint64(strh[32:]), "section name table")
	if err != nil {
		return err
	}
	for i := range int(shnum) {
		h := raw[i*shdrSize:]
		name := le.Uint32(h[0:])
		if uint64(name) >= uint64(len(strtab)) && i != 0 {
			return elfErr("section %d: name offset %d beyond the name table", i, name)
		}
		s := Section{
			Type:   le.Uint32(h[4:]),
			Flags:  le.Uint64(h[8:]),
			Addr:   le.Uint64(h[16:]),
			Offset: le.Uint64(h[24:]),
			Size:   le.Uint64(h[32:]),
			Align:  le.Uint64(h[48:]),
		}
		if uint64(name) < uint64(len(strtab)) {
			s.Name = cstring(strtab[name:])
		}
		e.sectionList = append(e.sectionList, s)
	}
	return nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// fileOffset maps an RVA to a file offset through the PT_LOAD segments.
func (e *ELF) fileOffset(rva, n uint64) (uint64, bool) {
	for _, s := range e.Segments {
		if rva >= s.VAddr && rva+n >= rva && rva+n <= s.VAddr+s.FileSize {
			return s.Offset + (rva - s.VAddr), true
		}
	}
	return 0, false
}

func (e *ELF) parseDynamic(d *Segment) (map[int64]uint64, error) {
	raw := e.data[d.Offset : d.Offset+d.FileSize]
	dyn := map[int64]uint64{}
	le := binary.LittleEndian
	n := 0
	for off := 0; ; off += 16 {
		if off+16 > len(raw) {
			return nil, elfErr("dynamic section: no DT_NULL terminator")
		}
		tag := int64(le.Uint64(raw[off:]))
		if tag == dtNull {
			break
		}
		n++
		if tag >= 0 && tag < dtNum {
			dyn[tag] = le.Uint64(raw[off+8:])
		}
	}
	if n == 0 {
		return nil, elfErr("dynamic section is empty")
	}
	return dyn, nil
}

func (e *ELF) parseSymbols(dyn map[int64]uint64, entry uint64) error {
	le := binary.LittleEndian
	sh := e.sectionByAddr(dyn[dtSymTab])
	if sh == nil {
		return elfErr("no section at DT_SYMTAB address %#x", dyn[dtSymTab])
	}
	if sh.Size == 0 {
		return elfErr("dynamic symbol table is empty")
	}
	syms, err := e.bytesAt(sh.Offset, sh.Size, "dynamic symbol table")
	if err != nil {
		return err
	}
	st := e.sectionByAddr(dyn[dtStrTab])
	if st == nil {
		return elfErr("no section at DT_STRTAB address %#x", dyn[dtStrTab])
	}
	strs, err := e.bytesAt(st.Offset, st.Size, "dynamic string table")
	if err != nil {
		return err
	}
	want := map[string]bool{"enclave_entry": true, "g_global_data_sim": true, "g_peak_heap_used": true, "g_global_data": true}
	for i := 1; (i+1)*symSize <= len(syms); i++ {
		s := syms[i*symSize:]
		name := le.Uint32(s[0:])
		if name == 0 {
			continue
		}
		if uint64(name) >= uint64(len(strs)) {
			return elfErr("dynamic symbol %d: name offset %d beyond the string table", i, name)
		}
		sym := cstring(strs[name:])
		info, shndx := s[4], le.Uint16(s[6:])
		if shndx == 0 && info>>4 != 2 { // SHN_UNDEF and not STB_WEAK
			return elfErr("undefined symbol %q (enclaves cannot import symbols)", sym)
		}
		if want[sym] {
			e.Symbols[sym] = le.Uint64(s[8:])
		}
	}
	if _, ok := e.Symbols["enclave_entry"]; !ok {
		e.Symbols["enclave_entry"] = entry
	}
	return nil
}

func (e *ELF) checkRelocations(dyn map[int64]uint64) error {
	if dyn[dtRel] != 0 {
		return elfErr("DT_REL relocations are not valid in a 64-bit enclave")
	}
	_, e.HasTextRel = dyn[dtTextRel]
	le := binary.LittleEndian
	for _, t := range []struct {
		addr, size uint64
		name       string
	}{{dyn[dtRela], dyn[dtRelaSz], "DT_RELA"}, {dyn[dtJmpRel], dyn[dtPltRelSz], "DT_JMPREL"}} {
		if t.addr == 0 && t.size == 0 {
			continue
		}
		sh := e.sectionByAddr(t.addr)
		if sh == nil {
			if t.size == 0 {
				continue
			}
			return elfErr("%s: no section at address %#x", t.name, t.addr)
		}
		raw, err := e.bytesAt(sh.Offset, t.size/relaSize*relaSize, t.name+" relocations")
		if err != nil {
			return err
		}
		for off := 0; off+relaSize <= len(raw); off += relaSize {
			typ := uint32(le.Uint64(raw[off+8:]))
			switch typ {
			case rX86_64None, rX86_64_64, rX86_64GlobDat, rX86_64JumpSlot, rX86_64Relative,
				rX86_64DTPMod64, rX86_64DTPOff64, rX86_64TPOff64:
			default:
				return elfErr("%s: relocation type %d at entry %d is not supported by the SGX loader", t.name, typ, off/relaSize)
			}
			if typ != rX86_64None {
				at := le.Uint64(raw[off:])
				e.relocPages = append(e.relocPages, at/pageSize)
				if at%pageSize > pageSize-8 {
					e.relocPages = append(e.relocPages, at/pageSize+1)
				}
			}
		}
	}
	return nil
}

// TextRelocations returns the targets of relocations that patch executable
// sections (text relocations), which the SDK signer refuses unless told to
// ignore them (-ignore-rel-error). Each relocation section is read once
// (sections naming the same bytes once in all), and each target is looked
// up among the executable sections by binary search, so the work is
// linear in the file's size whatever its section headers say.
func (e *ELF) TextRelocations() []uint64 {
	var out []uint64
	e.textRelocations(func(at uint64) { out = append(out, at) })
	return out
}

// textRelocations calls f with the target of every text relocation, and
// returns the number of relocation entries it read.
func (e *ELF) textRelocations(f func(at uint64)) (scanned uint64) {
	var exec [][2]uint64 // [addr, end) of executable sections, sorted
	for _, x := range e.sectionList {
		if x.Flags&0x4 != 0 && x.Size != 0 && x.Addr+x.Size > x.Addr { // SHF_EXECINSTR
			exec = append(exec, [2]uint64{x.Addr, x.Addr + x.Size})
		}
	}
	if len(exec) == 0 {
		return 0
	}
	merged := mergeRanges(exec)
	inExec := func(at uint64) bool {
		i, _ := slices.BinarySearchFunc(merged, at+1, func(x [2]uint64, v uint64) int { return cmp.Compare(x[0], v) })
		return i > 0 && at < merged[i-1][1]
	}
	// Relocation sections may overlap (in a hostile file, a thousand may
	// cover the whole file). Entries at the same offset with the same size
	// are the same entries, so the byte ranges of each class (entry size,
	// offset modulo it) are merged and each is scanned once: a class of
	// entry size n holds at most len(file)/n entries, and there are n
	// classes per size, so at most len(file) entries per size are read.
	type class struct{ ent, align uint64 }
	ranges := map[class][][2]uint64{}
	for _, r := range e.sectionList {
		if (r.Type != 4 && r.Type != 9) || r.Size == 0 { // SHT_RELA, SHT_REL
			continue
		}
		ent := uint64(relaSize)
		if r.Type == 9 {
			ent = 16
		}
		n := r.Size / ent * ent
		if n == 0 || r.Offset+n < r.Offset {
			continue
		}
		c := class{ent, r.Offset % ent}
		ranges[c] = append(ranges[c], [2]uint64{r.Offset, r.Offset + n})
	}
	classes := slices.Collect(maps.Keys(ranges))
	slices.SortFunc(classes, func(a, b class) int { return cmp.Or(cmp.Compare(a.ent, b.ent), cmp.Compare(a.align, b.align)) })
	le := binary.LittleEndian
	for _, c := range classes {
		for _, rg := range mergeRanges(ranges[c]) {
			raw, err := e.bytesAt(rg[0], rg[1]-rg[0], "relocations")
			if err != nil {
				continue
			}
			for o := uint64(0); o+c.ent <= uint64(len(raw)); o += c.ent {
				scanned++
				if at := le.Uint64(raw[o:]); inExec(at) {
					f(at)
				}
			}
		}
	}
	return scanned
}

// mergeRanges sorts [start, end) ranges and merges those that overlap or
// touch. It reorders rs.
func mergeRanges(rs [][2]uint64) [][2]uint64 {
	slices.SortFunc(rs, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	merged := [][2]uint64{rs[0]}
	for _, x := range rs[1:] {
		if last := &merged[len(merged)-1]; x[0] <= last[1] {
			last[1] = max(last[1], x[1])
		} else {
			merged = append(merged, x)
		}
	}
	return merged
}

func (e *ELF) parseMetadataNote() error {
	sh := e.sectionByName(".note.sgxmeta")
	if sh == nil {
		return elfErr("no .note.sgxmeta section (link the enclave with the SDK's metadata note)")
	}
	hdr, err := e.bytesAt(sh.Offset, noteHdrSize, ".note.sgxmeta header")
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	namesz, descsz := uint64(le.Uint32(hdr[0:])), uint64(le.Uint32(hdr[4:]))
	align := max(sh.Align, 1)
	if sh.Size != roundUp(noteHdrSize+namesz+descsz, align) {
		return elfErr(".note.sgxmeta: section size %#x does not match the note (name %d, descriptor %#x bytes)", sh.Size, namesz, descsz)
	}
	const name = "sgx_metadata\x00"
	got, err := e.bytesAt(sh.Offset+noteHdrSize, namesz, ".note.sgxmeta name")
	if err != nil {
		return err
	}
	if string(got) != name {
		return elfErr(".note.sgxmeta: note name %q, want \"sgx_metadata\"", cstring(got))
	}
	e.MetadataOffset = sh.Offset + noteHdrSize + namesz
	e.MetadataSize = descsz
	if _, err := e.bytesAt(e.MetadataOffset, descsz, ".note.sgxmeta descriptor"); err != nil {
		return err
	}
	if descsz < MetadataBlockSize {
		return elfErr(".note.sgxmeta: descriptor of %#x bytes, the metadata needs %#x", descsz, MetadataBlockSize)
	}
	return nil
}

func (e *ELF) parseMage() error {
	sh := e.sectionByName(MageSectionName)
	if sh == nil {
		return nil
	}
	switch {
	case sh.Addr%pageSize != 0:
		return elfErr("%s: address %#x is not page-aligned", MageSectionName, sh.Addr)
	case sh.Size == 0 || sh.Size%pageSize != 0:
		return elfErr("%s: size %#x is not a non-zero multiple of %#x", MageSectionName, sh.Size, pageSize)
	case sh.Flags&shfWrite != 0:
		return elfErr("%s: section is writable; it must be read-only", MageSectionName)
	case sh.Type == shtNobits:
		return elfErr("%s: section has no file data (SHT_NOBITS)", MageSectionName)
	}
	if _, err := e.bytesAt(sh.Offset, sh.Size, MageSectionName); err != nil {
		return err
	}
	// The section must be loaded read-only: inside a PT_LOAD segment's file
	// data, at the matching file offset, in a segment without PF_W.
	var seg *Segment
	for i := range e.Segments {
		s := &e.Segments[i]
		if sh.Addr >= s.VAddr && sh.Addr+sh.Size <= s.VAddr+s.FileSize {
			seg = s
		}
	}
	if seg == nil {
		return elfErr("%s: section at %#x+%#x is not inside the file data of a loaded segment", MageSectionName, sh.Addr, sh.Size)
	}
	if seg.Flags&pfW != 0 {
		return elfErr("%s: section is in writable segment %d; it must be read-only", MageSectionName, seg.Index)
	}
	if sh.Addr-seg.VAddr != sh.Offset-seg.Offset {
		return elfErr("%s: file offset %#x does not match its segment's mapping", MageSectionName, sh.Offset)
	}
	s := *sh
	e.Mage = &s
	return nil
}

// MageSection returns the content of the .sgx_mage section in the file, or
// nil if the enclave has none.
func (e *ELF) MageSection() []byte {
	if e.Mage == nil {
		return nil
	}
	return e.data[e.Mage.Offset : e.Mage.Offset+e.Mage.Size]
}

func roundUp(v, a uint64) uint64 {
	if a == 0 {
		return v
	}
	return (v + a - 1) / a * a
}
