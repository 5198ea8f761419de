// Package tdx computes the launch measurement of Intel TDX confidential
// VMs: the MRTD a TDX module accumulates while the host adds the TD
// firmware's pages (TDH.MEM.PAGE.ADD) and extends their contents
// (TDH.MR.EXTEND), as the Intel TDX Module specification and the TDVF
// design guide describe it.
//
// It gives MRTD from a TDVF (OVMF) image, the RTMRs of a direct boot of a
// kernel, initrd and command line (BootRTMRs, KernelRTMRs), and the RTMRs
// replayed from a TD's own event log (ParseEventLog, ReplayRTMRs).
package tdx

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/internal/ovmf"
)

// ErrFirmware is wrapped by every refusal of a firmware image.
var ErrFirmware = errors.New("tdx: firmware")

// GUIDs of the TDX metadata (TDVF design guide, section 11): the OVMF
// table entry that holds its offset, and the GUID before it.
const (
	guidMetadataBlock = "e47a6535-984a-4798-865e-4685a7bf8ec2" // holds the metadata's offset from the end
	guidMetadata      = "e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae" // precedes the metadata descriptor
)

const (
	pageSize   = 4096
	chunkSize  = 256 // TDH.MR.EXTEND
	recordSize = 128 // the extension buffer of each leaf function
)

// Section types and attributes of the TDX metadata (TDVF design guide,
// table 11-2 and 11-3).
const (
	SectionBFV     = 0 // boot firmware volume: data from the image
	SectionCFV     = 1 // configuration firmware volume: data from the image
	SectionTDHOB   = 2 // the TD HOB: built by the host
	SectionTempMem = 3 // temporary memory: zero pages

	AttrExtendMR = 1 // the section's contents are extended into MRTD
)

// Section is one entry of a TDVF's TDX metadata.
type Section struct {
	DataOffset uint32 `json:"data_offset"` // in the image
	DataSize   uint32 `json:"data_size"`
	Base       uint64 `json:"gpa"`  // guest physical address
	Size       uint64 `json:"size"` // bytes of guest memory
	Type       uint32 `json:"type"` // SectionBFV, ...
	Attributes uint32 `json:"attributes"`
}

// guidBlock returns the data of an OVMF GUIDed table entry.
func guidBlock(fw []byte, want string) ([]byte, error) {
	b, err := ovmf.Block(fw, want)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFirmware, err)
	}
	return b, nil
}

// maxSections bounds the metadata a hostile image can make us walk, and
// maxMemory the guest memory its sections may ask for, which bounds the
// pages MRTD records.
const (
	maxSections = 64
	maxMemory   = 1 << 32
)

// ParseMetadata returns the TDX metadata sections of a TDVF image, checked
// as the TDVF design guide requires: a TD HOB, a boot firmware volume,
// firmware volumes that lie in the image and together fill it, and no two
// sections overlapping in guest memory.
func ParseMetadata(fw []byte) ([]Section, error) {
	blk, err := guidBlock(fw, guidMetadataBlock)
	if err != nil {
		return nil, err
	}
	if len(blk) < 4 {
		return nil, fmt.Errorf("%w: TDX metadata offset block of %d bytes", ErrFirmware, len(blk))
	}
	off := uint64(binary.LittleEndian.Uint32(blk))
	// The descriptor starts off bytes before the end, after the metadata
	// GUID: both must lie in the image.
	if off < 16+16 || off+16 > uint64(len(fw)) {
		return nil, fmt.Errorf("%w: TDX metadata at %#x from the end of a %#x-byte image", ErrFirmware, off, len(fw))
	}
	at := uint64(len(fw)) - off
	if [16]byte(fw[at-16:at]) != ovmf.GUID(guidMetadata) {
		return nil, fmt.Errorf("%w: no TDX metadata GUID before the descriptor", ErrFirmware)
	}
	d := fw[at:]
	if len(d) < 16 || !bytes.Equal(d[:4], []byte("TDVF")) {
		return nil, fmt.Errorf("%w: no TDVF descriptor", ErrFirmware)
	}
	length, version, count := binary.LittleEndian.Uint32(d[4:]), binary.LittleEndian.Uint32(d[8:]), binary.LittleEndian.Uint32(d[12:])
	switch {
	case version != 1:
		return nil, fmt.Errorf("%w: TDVF descriptor version %d, want 1", ErrFirmware, version)
	case count == 0 || count > maxSections:
		return nil, fmt.Errorf("%w: %d TDX metadata sections, want 1 to %d", ErrFirmware, count, maxSections)
	case uint64(length) != 16+32*uint64(count) || uint64(len(d)) < uint64(length):
		return nil, fmt.Errorf("%w: TDVF descriptor of %d bytes for %d sections", ErrFirmware, length, count)
	}
	var out []Section
	var hob, bfv bool
	var fvBytes, memory uint64
	for i := range count {
		b := d[16+32*i:]
		s := Section{DataOffset: binary.LittleEndian.Uint32(b), DataSize: binary.LittleEndian.Uint32(b[4:]),
			Base: binary.LittleEndian.Uint64(b[8:]), Size: binary.LittleEndian.Uint64(b[16:]),
			Type: binary.LittleEndian.Uint32(b[24:]), Attributes: binary.LittleEndian.Uint32(b[28:])}
		where := fmt.Sprintf("TDX metadata section %d", i)
		switch s.Type {
		case SectionBFV, SectionCFV:
			if s.DataSize == 0 || uint64(s.DataOffset)+uint64(s.DataSize) > uint64(len(fw)) || s.Size != uint64(s.DataSize) {
				return nil, fmt.Errorf("%w: %s: image bytes [%#x, +%#x) for %#x bytes of memory", ErrFirmware, where, s.DataOffset, s.DataSize, s.Size)
			}
			bfv = bfv || s.Type == SectionBFV
			fvBytes += uint64(s.DataSize)
		case SectionTDHOB:
			if hob {
				return nil, fmt.Errorf("%w: two TD HOB sections", ErrFirmware)
			}
			hob = true
		case SectionTempMem:
		default:
			return nil, fmt.Errorf("%w: %s: type %d is not one TDVF defines", ErrFirmware, where, s.Type)
		}
		switch {
		case s.Base%pageSize != 0 || s.Size%pageSize != 0 || s.Base+s.Size < s.Base:
			return nil, fmt.Errorf("%w: %s: memory [%#x, +%#x) is not whole pages", ErrFirmware, where, s.Base, s.Size)
		case s.Attributes&AttrExtendMR != 0 && s.Type != SectionBFV && s.Type != SectionCFV:
			return nil, fmt.Errorf("%w: %s: a section without data is marked to be measured", ErrFirmware, where)
		case s.Size > maxMemory-memory:
			return nil, fmt.Errorf("%w: %s: the sections ask for more than %#x bytes of guest memory", ErrFirmware, where, uint64(maxMemory))
		}
		memory += s.Size
		for j, o := range out {
			if s.Base < o.Base+o.Size && o.Base < s.Base+s.Size {
				return nil, fmt.Errorf("%w: %s overlaps section %d in guest memory", ErrFirmware, where, j)
			}
		}
		out = append(out, s)
	}
	switch {
	case !hob:
		return nil, fmt.Errorf("%w: no TD HOB section", ErrFirmware)
	case !bfv:
		return nil, fmt.Errorf("%w: no boot firmware volume section", ErrFirmware)
	case fvBytes != uint64(len(fw)):
		return nil, fmt.Errorf("%w: the firmware volumes hold %#x bytes of a %#x-byte image", ErrFirmware, fvBytes, len(fw))
	}
	return out, nil
}

// MRTD returns the MRTD of a TD launched with the TDVF image fw by a host
// that adds every section's pages in metadata order and extends the
// contents of the sections marked AttrExtendMR: for each page,
// TDH.MEM.PAGE.ADD, then TDH.MR.EXTEND of each 256-byte chunk of it. Each
// leaf function extends a 128-byte buffer: its name, then the GPA at byte
// 16; TDH.MR.EXTEND then adds the chunk.
func MRTD(fw []byte) ([48]byte, error) {
	sections, err := ParseMetadata(fw)
	if err != nil {
		return [48]byte{}, err
	}
	h := sha512.New384()
	var rec [recordSize]byte
	record := func(name string, gpa uint64) {
		clear(rec[:])
		copy(rec[:], name)
		binary.LittleEndian.PutUint64(rec[16:], gpa)
		h.Write(rec[:])
	}
	for _, s := range sections {
		extend := s.Attributes&AttrExtendMR != 0
		for off := uint64(0); off < s.Size; off += chunkSize {
			if off%pageSize == 0 {
				record("MEM.PAGE.ADD", s.Base+off)
			}
			if extend {
				record("MR.EXTEND", s.Base+off)
				h.Write(fw[uint64(s.DataOffset)+off:][:chunkSize])
			}
		}
	}
	return [48]byte(h.Sum(nil)), nil
}
