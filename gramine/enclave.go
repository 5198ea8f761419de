package gramine

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// ErrLibpal is wrapped by every error about a libpal.so.
var ErrLibpal = errors.New("gramine: libpal")

// Layout constants of Gramine's SGX PAL (generated_offsets.c), v1.5+.
const (
	pageSize      = 4096
	ssaFramePages = 4 // SSA_FRAME_SIZE / PAGESIZE
	ssaFrames     = 2 // SSA_FRAME_NUM
	ssaPerThread  = ssaFrames * ssaFramePages * pageSize
	stackSize     = 64 * pageSize                // ENCLAVE_STACK_SIZE
	sigStackSize  = 16 * pageSize                // ENCLAVE_SIG_STACK_SIZE
	heapMin       = 0x10000                      // MMAP_MIN_ADDR
	gprSize       = 0xb8                         // SGX_GPR_SIZE
	canary        = 0xbadbadbadbad               // STACK_PROTECTOR_CANARY_DEFAULT
	maxLibpalSpan = 1 << 30                      // bytes of address space a libpal may span
	secinfoREG    = measure.SecinfoREG           // 0x200
	secinfoTCS    = 0x100                        // PAGEINFO_TCS
	flagsRW       = secinfoREG | 0x1 | 0x2       // 0x203
	flagsFree     = secinfoREG | 0x1 | 0x2 | 0x4 // 0x207, added but not measured
)

// TCS and TLS field offsets.
const (
	tcsOSSA, tcsNSSA, tcsOENTRY, tcsOGSBase, tcsOFSLimit, tcsOGSLimit = 0x10, 0x1c, 0x20, 0x38, 0x40, 0x44
	tlsSelf, tlsCanary, tlsEnclaveSize, tlsTCSOffset, tlsInitialStack = 0x0, 0x8, 0x110, 0x118, 0x120
	tlsSigStackLow, tlsSigStackHigh, tlsSSA, tlsGPR                   = 0x130, 0x138, 0x148, 0x150
	tlsManifestSize, tlsHeapMin, tlsHeapMax                           = 0x1a0, 0x1a8, 0x1b0
)

// Segment is a PT_LOAD segment of libpal.so.
type Segment struct {
	Offset, VAddr, FileSize, MemSize uint64
	Flags                            elf.ProgFlag
}

// Libpal is a parsed libpal.so: the Gramine PAL whose segments are
// measured into every enclave that runs it.
type Libpal struct {
	Raw      []byte
	Entry    uint64
	Segments []Segment
	Span     uint64 // bytes from the first page to the end of the last
	SHA256   [32]byte
}

// ParseLibpal parses a libpal.so: a position-independent x86-64 ELF whose
// PT_LOAD segments do not overlap.
func ParseLibpal(b []byte) (*Libpal, error) {
	bad := func(format string, a ...any) error { return fmt.Errorf("%w: %s", ErrLibpal, fmt.Sprintf(format, a...)) }
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLibpal, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, bad("%v %v, want a 64-bit x86-64 ELF", f.Class, f.Machine)
	}
	p := &Libpal{Raw: b, Entry: f.Entry, SHA256: sha256.Sum256(b)}
	lo, hi := ^uint64(0), uint64(0)
	for i, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		s := Segment{Offset: ph.Off, VAddr: ph.Vaddr, FileSize: ph.Filesz, MemSize: ph.Memsz, Flags: ph.Flags}
		switch {
		case s.Offset+s.FileSize < s.Offset || s.Offset+s.FileSize > uint64(len(b)):
			return nil, bad("PT_LOAD %d: file bytes [%#x, +%#x) beyond the file's %d bytes", i, s.Offset, s.FileSize, len(b))
		case s.FileSize > s.MemSize:
			return nil, bad("PT_LOAD %d: p_filesz %#x exceeds p_memsz %#x", i, s.FileSize, s.MemSize)
		case s.VAddr+s.MemSize < s.VAddr || s.VAddr+s.MemSize > maxLibpalSpan:
			return nil, bad("PT_LOAD %d: [%#x, +%#x) beyond %d bytes of address space", i, s.VAddr, s.MemSize, maxLibpalSpan)
		}
		a, z := rounddown(s.VAddr), roundup(s.VAddr+s.MemSize)
		for j, o := range p.Segments {
			if a < roundup(o.VAddr+o.MemSize) && rounddown(o.VAddr) < z {
				return nil, bad("PT_LOAD %d overlaps PT_LOAD segment %d in its pages (a page would be added twice)", i, j)
			}
		}
		lo, hi = min(lo, a), max(hi, z)
		p.Segments = append(p.Segments, s)
	}
	switch {
	case len(p.Segments) == 0:
		return nil, bad("no PT_LOAD segment")
	case lo != 0:
		return nil, bad("first PT_LOAD page at %#x: only position-independent builds (first segment at 0) are supported", lo)
	case p.Entry >= hi:
		return nil, bad("entry point %#x outside the segments", p.Entry)
	}
	p.Span = hi
	return p, nil
}

func rounddown(a uint64) uint64 { return a &^ (pageSize - 1) }
func roundup(a uint64) uint64   { return (a + pageSize - 1) &^ (pageSize - 1) }

// Layout is where Gramine's loader puts each area of an enclave, top-down
// from the enclave size (base 0).
type Layout struct {
	Size          uint64
	Threads       int
	EDMM          bool
	ManifestLen   uint64 // bytes of the .manifest.sgx (without the NUL)
	Manifest      uint64 // address of the manifest area
	SSA, TCS, TLS uint64
	Stacks        uint64 // lowest stack's address (stack 0 is the highest)
	SigStacks     uint64
	Libpal        uint64 // libpal's base
}

// ErrTooSmall is wrapped when the areas do not fit in the enclave.
var ErrTooSmall = errors.New("gramine: enclave size is not large enough")

// NewLayout places the areas for an enclave of size bytes, threads
// threads, a manifest of manifestLen bytes and a libpal spanning palSpan
// bytes.
func NewLayout(size uint64, threads int, edmm bool, manifestLen, palSpan uint64) (*Layout, error) {
	l := &Layout{Size: size, Threads: threads, EDMM: edmm, ManifestLen: manifestLen}
	top := size
	place := func(n uint64) (uint64, error) {
		if n > top || top-n < heapMin {
			return 0, fmt.Errorf("%w (%s for %d threads, a %d-byte manifest and a %d-byte libpal)", ErrTooSmall, sizeString(size), threads, manifestLen, palSpan)
		}
		top -= n
		return top, nil
	}
	t := uint64(threads)
	var err error
	for _, a := range []struct {
		dst *uint64
		n   uint64
	}{
		{&l.Manifest, roundup(manifestLen + 1)},
		{&l.SSA, t * ssaPerThread},
		{&l.TCS, t * pageSize},
		{&l.TLS, t * pageSize},
		{&l.Stacks, t * stackSize},
		{&l.SigStacks, t * sigStackSize},
		{&l.Libpal, palSpan},
	} {
		if *a.dst, err = place(a.n); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// stack returns thread t's stack: stack 0 is the highest.
func (l *Layout) stack(t int) uint64 {
	return l.Stacks + uint64(l.Threads-1-t)*stackSize
}

func (l *Layout) sigStack(t int) uint64 {
	return l.SigStacks + uint64(l.Threads-1-t)*sigStackSize
}

// tcsPage and tlsPage are thread t's TCS and TLS contents.
func (l *Layout) tcsPage(t int, entry uint64, p *[pageSize]byte) {
	clear(p[:])
	le := binary.LittleEndian
	le.PutUint64(p[tcsOSSA:], l.SSA+ssaPerThread*uint64(t))
	le.PutUint32(p[tcsNSSA:], ssaFrames)
	le.PutUint64(p[tcsOENTRY:], l.Libpal+entry)
	le.PutUint64(p[tcsOGSBase:], l.TLS+pageSize*uint64(t))
	le.PutUint32(p[tcsOFSLimit:], 0xfff)
	le.PutUint32(p[tcsOGSLimit:], 0xfff)
}

func (l *Layout) tlsPage(t int, p *[pageSize]byte) {
	clear(p[:])
	le := binary.LittleEndian
	ssa := l.SSA + ssaPerThread*uint64(t)
	for _, f := range []struct{ off, v uint64 }{
		{tlsSelf, l.TLS + pageSize*uint64(t)},
		{tlsCanary, canary},
		{tlsEnclaveSize, l.Size},
		{tlsTCSOffset, l.TCS + pageSize*uint64(t)},
		{tlsInitialStack, l.stack(t) + stackSize},
		{tlsSigStackLow, l.sigStack(t)},
		{tlsSigStackHigh, l.sigStack(t) + sigStackSize},
		{tlsSSA, ssa},
		{tlsGPR, ssa + ssaFramePages*pageSize - gprSize},
		{tlsManifestSize, l.ManifestLen + 1},
		{tlsHeapMin, heapMin},
		{tlsHeapMax, l.Libpal},
	} {
		le.PutUint64(p[f.off:], f.v)
	}
}

// MeasureManifest hashes ECREATE and the manifest pages: the part of the
// measurement that depends on the manifest's content. manifest is the
// file's bytes (the NUL is added here).
func (l *Layout) MeasureManifest(h *measure.Hash, manifest []byte) {
	h.ECreate(ssaFramePages, l.Size)
	var page [pageSize]byte
	for off := uint64(0); off < roundup(l.ManifestLen+1); off += pageSize {
		clear(page[:])
		if off < uint64(len(manifest)) {
			copy(page[:], manifest[off:])
		}
		h.AddPage(l.Manifest+off, measure.SecinfoREG|measure.SecinfoR, page[:])
	}
}

// MeasureSuffix hashes everything after the manifest: SSA, TCS, TLS,
// stacks, signal stacks, libpal, and (without EDMM) the free heap's EADD
// records. It depends on the layout and libpal only, never on the
// manifest's content.
func (l *Layout) MeasureSuffix(h *measure.Hash, pal *Libpal) {
	var page [pageSize]byte
	var zero [pageSize]byte
	t := uint64(l.Threads)
	for a := l.SSA; a < l.SSA+t*ssaPerThread; a += pageSize {
		h.AddPage(a, flagsRW, zero[:])
	}
	for i := range l.Threads {
		l.tcsPage(i, pal.Entry, &page)
		h.AddPage(l.TCS+pageSize*uint64(i), secinfoTCS, page[:])
	}
	for i := range l.Threads {
		l.tlsPage(i, &page)
		h.AddPage(l.TLS+pageSize*uint64(i), flagsRW, page[:])
	}
	// Each stack is its own area, stack 0 (the highest) first.
	for i := range l.Threads {
		for a := l.stack(i); a < l.stack(i)+stackSize; a += pageSize {
			h.AddPage(a, flagsRW, zero[:])
		}
	}
	for i := range l.Threads {
		for a := l.sigStack(i); a < l.sigStack(i)+sigStackSize; a += pageSize {
			h.AddPage(a, flagsRW, zero[:])
		}
	}
	for _, s := range pal.Segments {
		flags := uint64(secinfoREG)
		if s.Flags&elf.PF_R != 0 {
			flags |= 0x1
		}
		if s.Flags&elf.PF_W != 0 {
			flags |= 0x2
		}
		if s.Flags&elf.PF_X != 0 {
			flags |= 0x4
		}
		first := rounddown(s.VAddr)
		fileFirst := rounddown(s.Offset)
		for a := first; a < roundup(s.VAddr+s.MemSize); a += pageSize {
			// The file window of this page, clipped to the segment's file
			// bytes; zeros everywhere else (Gramine's load_file).
			clear(page[:])
			win := fileFirst + (a - first)
			lo, hi := max(win, s.Offset), min(win+pageSize, s.Offset+s.FileSize)
			if lo < hi {
				copy(page[lo-win:], pal.Raw[lo:hi])
			}
			h.AddPage(l.Libpal+a, flags, page[:])
		}
	}
	if !l.EDMM && l.Libpal > heapMin {
		h.EAddRange(heapMin, (l.Libpal-heapMin)/pageSize, flagsFree)
	}
}

// SuffixBytes is how many bytes MeasureSuffix hashes.
func (l *Layout) SuffixBytes(pal *Libpal) uint64 {
	pages := uint64(l.Threads) * (ssaPerThread + 2*pageSize + stackSize + sigStackSize) / pageSize
	for _, s := range pal.Segments {
		pages += (roundup(s.VAddr+s.MemSize) - rounddown(s.VAddr)) / pageSize
	}
	n := pages * 5184
	if !l.EDMM {
		n += (l.Libpal - heapMin) / pageSize * 64
	}
	return n
}

// Enclave is a Gramine enclave to measure or sign: its manifest and the
// libpal it runs with.
type Enclave struct {
	Manifest *Manifest
	Libpal   *Libpal
	Layout   *Layout
}

// NewEnclave lays out the enclave of a parsed manifest and libpal.
func NewEnclave(m *Manifest, pal *Libpal) (*Enclave, error) {
	l, err := NewLayout(m.EnclaveSize, m.MaxThreads, m.EDMM, uint64(len(m.Raw)), pal.Span)
	if err != nil {
		return nil, err
	}
	return &Enclave{Manifest: m, Libpal: pal, Layout: l}, nil
}

// Measure returns the enclave's MRENCLAVE.
func (e *Enclave) Measure() sgx.Measurement {
	h := measure.New().Batched()
	e.Layout.MeasureManifest(h, e.Manifest.Raw)
	e.Layout.MeasureSuffix(h, e.Libpal)
	return h.Sum()
}

// XFRM bits of sgx.cpu_features and Gramine's constants.
const (
	xfrmLegacy    = 0x3
	xfrmMaskConst = 0xfffffffffff9ff1b
)

func xfrmBits(feature string) uint64 {
	switch feature {
	case "avx":
		return 0x4
	case "avx512":
		return 0xe4
	case "amx":
		return 0x60000
	case "mpx":
		return 0x18
	case "pkru":
		return 0x200
	}
	return 0
}

// Sigstruct returns the unsigned SIGSTRUCT Gramine's signer makes for the
// enclave with MRENCLAVE mr on date.
func (e *Enclave) Sigstruct(mr sgx.Measurement, date time.Time) *sgx.Sigstruct {
	m := e.Manifest
	s := sgx.NewSigstruct()
	s.Date = sgx.DateFromTime(date)
	s.EnclaveHash = mr
	s.ISVProdID, s.ISVSVN = m.ISVProdID, m.ISVSVN
	s.Attributes.Flags = sgx.AttrMode64Bit
	if m.Debug {
		s.Attributes.Flags |= sgx.AttrDebug
	}
	s.AttributeMask.Flags = ^uint64(0)
	if m.UseExinfo {
		s.MiscSelect = 1
	}
	s.MiscMask = 0xffffffff
	xfrm, mask := uint64(xfrmLegacy), uint64(xfrmMaskConst)
	for _, k := range []string{"avx", "avx512", "amx", "mpx", "pkru"} {
		switch m.CPUFeatures[k] {
		case "required":
			xfrm |= xfrmBits(k)
			mask |= xfrmBits(k)
		case "disabled":
			xfrm &^= xfrmBits(k)
			mask |= xfrmBits(k)
		}
	}
	s.Attributes.Xfrm, s.AttributeMask.Xfrm = xfrm, mask
	return s
}

// Sign measures the enclave and returns its signed SIGSTRUCT (the 1808
// bytes of Gramine's .sig file).
func (e *Enclave) Sign(key *rsa.PrivateKey, date time.Time) (*sgx.Sigstruct, error) {
	s := e.Sigstruct(e.Measure(), date)
	if err := s.Sign(key); err != nil {
		return nil, err
	}
	return s, nil
}
