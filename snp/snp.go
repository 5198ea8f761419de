// Package snp computes the launch digest (the MEASUREMENT of an
// attestation report) of an AMD SEV-SNP guest launched by QEMU with an
// OVMF image: a SHA-384 chain over the PAGE_INFO of every page the host
// adds before launch (SEV Secure Nested Paging Firmware ABI, 8.17,
// SNP_LAUNCH_UPDATE): the firmware's pages, the pages the firmware's SEV
// metadata asks for, then one VMSA page per vCPU.
//
// This is the first piece of SEV-SNP support (issue 20): no direct boot
// yet (the kernel hashes page is measured as zeros, as when QEMU boots the
// firmware alone), QEMU's initial register state only.
package snp

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/magesgx/mage/internal/ovmf"
)

// ErrFirmware is wrapped by every refusal of a firmware image or options.
var ErrFirmware = errors.New("snp: firmware")

// Page types of PAGE_INFO (SNP Firmware ABI, table "PAGE_TYPE").
const (
	pageNormal  = 0x01
	pageVMSA    = 0x02
	pageZero    = 0x03
	pageSecrets = 0x05
	pageCPUID   = 0x06
)

// SEV metadata section types (edk2 OvmfPkg, SEV metadata).
const (
	SectionSecMem       = 1    // SNP_SEC_MEM: pre-validated zero pages
	SectionSecrets      = 2    // SNP_SECRETS: the secrets page
	SectionCPUID        = 3    // CPUID: the CPUID page
	SectionSVSMCAA      = 4    // SVSM_CAA: zero pages
	SectionKernelHashes = 0x10 // SNP_KERNEL_HASHES: the hashes of a direct boot
)

// GUIDs of the OVMF table entries SEV-SNP uses.
const (
	guidSEVMetadata  = "dc886566-984a-4798-a75e-5585a7bf67cc"
	guidSEVESResetVB = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
)

const (
	pageSize = 4096
	fourGiB  = 1 << 32
	vmsaGPA  = 0xFFFFFFFFF000 // where the VMSA pages are recorded
	bspEIP   = 0xfffffff0
	maxVCPUs = 512
)

// Options are the launch parameters the digest depends on.
type Options struct {
	VCPUs int // number of vCPUs, one VMSA page each
	// VCPUSignature is the CPUID Fn0000_0001_EAX of the vCPU type (family,
	// model, stepping; see Signature), which QEMU puts in RDX at reset.
	VCPUSignature uint32
	// GuestFeatures is the VMSA's SEV_FEATURES (QEMU's default: 1, SNP
	// active).
	GuestFeatures uint64
}

// Signature is the CPUID family/model/stepping signature (AMD CPUID
// Specification #25481, Fn0000_0001_EAX).
func Signature(family, model, stepping int) uint32 {
	famLow, famHigh := family, 0
	if family > 0xf {
		famLow, famHigh = 0xf, (family-0xf)&0xff
	}
	return uint32(famHigh<<20 | (model>>4&0xf)<<16 | famLow<<8 | (model&0xf)<<4 | stepping&0xf)
}

// VCPUType returns the signature of one of QEMU's EPYC CPU models.
func VCPUType(name string) (uint32, bool) {
	switch name {
	case "EPYC", "EPYC-v1", "EPYC-v2", "EPYC-IBPB", "EPYC-v3", "EPYC-v4":
		return Signature(23, 1, 2), true
	case "EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3":
		return Signature(23, 49, 0), true
	case "EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2":
		return Signature(25, 1, 1), true
	case "EPYC-Genoa", "EPYC-Genoa-v1":
		return Signature(25, 17, 0), true
	case "EPYC-Turin":
		return Signature(26, 0, 0), true
	}
	return 0, false
}

// Section is one entry of an OVMF image's SEV metadata.
type Section struct {
	GPA  uint32 `json:"gpa"`
	Size uint32 `json:"size"`
	Type uint32 `json:"type"`
}

// maxSections bounds the metadata a hostile image can make us walk; its
// sections may together ask for at most 4 GiB of guest memory (they lie
// in the 32-bit guest address space), which bounds the pages
// LaunchDigest records.
const maxSections = 64

// Metadata returns the SEV metadata sections of an OVMF image.
func Metadata(fw []byte) ([]Section, error) {
	blk, err := ovmf.Block(fw, guidSEVMetadata)
	if err != nil {
		return nil, fmt.Errorf("%w: SEV metadata: %w", ErrFirmware, err)
	}
	if len(blk) < 4 {
		return nil, fmt.Errorf("%w: SEV metadata offset block of %d bytes", ErrFirmware, len(blk))
	}
	off := uint64(binary.LittleEndian.Uint32(blk))
	if off < 16 || off > uint64(len(fw)) {
		return nil, fmt.Errorf("%w: SEV metadata at %#x from the end of a %#x-byte image", ErrFirmware, off, len(fw))
	}
	d := fw[uint64(len(fw))-off:]
	size, version, count := binary.LittleEndian.Uint32(d[4:]), binary.LittleEndian.Uint32(d[8:]), binary.LittleEndian.Uint32(d[12:])
	switch {
	case string(d[:4]) != "ASEV" || version != 1:
		return nil, fmt.Errorf("%w: no ASEV metadata of version 1", ErrFirmware)
	case count > maxSections || uint64(size) < 16+12*uint64(count) || uint64(size) > uint64(len(d)):
		return nil, fmt.Errorf("%w: SEV metadata of %d bytes for %d sections", ErrFirmware, size, count)
	}
	var out []Section
	var memory uint64
	for i := range count {
		b := d[16+12*i:]
		s := Section{GPA: binary.LittleEndian.Uint32(b), Size: binary.LittleEndian.Uint32(b[4:]), Type: binary.LittleEndian.Uint32(b[8:])}
		switch s.Type {
		case SectionSecMem, SectionSecrets, SectionCPUID, SectionSVSMCAA, SectionKernelHashes:
		default:
			return nil, fmt.Errorf("%w: SEV metadata section %d: type %#x", ErrFirmware, i, s.Type)
		}
		if s.GPA%pageSize != 0 || s.Size%pageSize != 0 || s.Size == 0 {
			return nil, fmt.Errorf("%w: SEV metadata section %d: [%#x, +%#x) is not whole pages", ErrFirmware, i, s.GPA, s.Size)
		}
		if memory += uint64(s.Size); memory > fourGiB {
			return nil, fmt.Errorf("%w: SEV metadata section %d: the sections ask for more than 4 GiB of guest memory", ErrFirmware, i)
		}
		out = append(out, s)
	}
	return out, nil
}

// resetEIP is the SEV-ES reset vector the APs start at.
func resetEIP(fw []byte) (uint32, error) {
	blk, err := ovmf.Block(fw, guidSEVESResetVB)
	if err != nil || len(blk) < 4 {
		return 0, fmt.Errorf("%w: no SEV-ES reset block: %v", ErrFirmware, err)
	}
	return binary.LittleEndian.Uint32(blk), nil
}

// chain is the launch digest being computed.
type chain struct{ ld [48]byte }

// update extends the digest with a page's PAGE_INFO (SNP Firmware ABI,
// "PAGE_INFO"): the digest so far, the page's contents digest, the
// structure's length 0x70, the page type, IMI 0, VMPL permissions 0, and
// the GPA.
func (c *chain) update(typ byte, gpa uint64, contents [48]byte) {
	var p [0x70]byte
	copy(p[:], c.ld[:])
	copy(p[48:], contents[:])
	binary.LittleEndian.PutUint16(p[96:], 0x70)
	p[98] = typ
	binary.LittleEndian.PutUint64(p[104:], gpa)
	c.ld = sha512.Sum384(p[:])
}

// vmsa is the VMSA page QEMU gives a vCPU that starts at eip (AMD APM
// vol. 2, table B-4, the save area layout; QEMU's reset state).
func vmsa(eip uint32, o Options) []byte {
	v := make([]byte, pageSize)
	le := binary.LittleEndian
	seg := func(off int, sel, attrib uint16, limit uint32, base uint64) {
		le.PutUint16(v[off:], sel)
		le.PutUint16(v[off+2:], attrib)
		le.PutUint32(v[off+4:], limit)
		le.PutUint64(v[off+8:], base)
	}
	seg(0x00, 0, 0x93, 0xffff, 0)                           // ES
	seg(0x10, 0xf000, 0x9b, 0xffff, uint64(eip&0xffff0000)) // CS
	seg(0x20, 0, 0x93, 0xffff, 0)                           // SS
	seg(0x30, 0, 0x93, 0xffff, 0)                           // DS
	seg(0x40, 0, 0x93, 0xffff, 0)                           // FS
	seg(0x50, 0, 0x93, 0xffff, 0)                           // GS
	seg(0x60, 0, 0, 0xffff, 0)                              // GDTR
	seg(0x70, 0, 0x82, 0xffff, 0)                           // LDTR
	seg(0x80, 0, 0, 0xffff, 0)                              // IDTR
	seg(0x90, 0, 0x8b, 0xffff, 0)                           // TR
	le.PutUint64(v[0xd0:], 0x1000)                          // EFER: SVME
	le.PutUint64(v[0x148:], 0x40)                           // CR4: MCE
	le.PutUint64(v[0x158:], 0x10)                           // CR0: ET
	le.PutUint64(v[0x160:], 0x400)                          // DR7
	le.PutUint64(v[0x168:], 0xffff0ff0)                     // DR6
	le.PutUint64(v[0x170:], 0x2)                            // RFLAGS
	le.PutUint64(v[0x178:], uint64(eip&0xffff))             // RIP
	le.PutUint64(v[0x268:], 0x7040600070406)                // G_PAT
	le.PutUint64(v[0x310:], uint64(o.VCPUSignature))        // RDX
	le.PutUint64(v[0x3b0:], o.GuestFeatures)                // SEV_FEATURES
	le.PutUint64(v[0x3e8:], 0x1)                            // XCR0
	le.PutUint32(v[0x408:], 0x1f80)                         // MXCSR
	le.PutUint16(v[0x410:], 0x37f)                          // x87 FCW
	return v
}

// LaunchDigest returns the launch digest of a guest QEMU launches with the
// OVMF image fw (mapped to end at 4 GiB) and options o, without direct
// boot: the firmware's pages, then each SEV metadata section in order
// (zero pages for SNP_SEC_MEM, SVSM_CAA and, without a direct boot,
// SNP_KERNEL_HASHES; the secrets and CPUID pages), then the VMSA of each
// vCPU (the first at the reset vector, the others at the SEV-ES reset
// block's).
func LaunchDigest(fw []byte, o Options) ([48]byte, error) {
	switch {
	case len(fw) == 0 || len(fw)%pageSize != 0 || len(fw) > fourGiB:
		return [48]byte{}, fmt.Errorf("%w: %d bytes is not a whole number of pages below 4 GiB", ErrFirmware, len(fw))
	case o.VCPUs < 1 || o.VCPUs > maxVCPUs:
		return [48]byte{}, fmt.Errorf("%w: %d vCPUs, want 1 to %d", ErrFirmware, o.VCPUs, maxVCPUs)
	}
	sections, err := Metadata(fw)
	if err != nil {
		return [48]byte{}, err
	}
	apEIP, err := resetEIP(fw)
	if err != nil {
		return [48]byte{}, err
	}
	var c chain
	base := uint64(fourGiB - len(fw))
	for off := 0; off < len(fw); off += pageSize {
		c.update(pageNormal, base+uint64(off), sha512.Sum384(fw[off:off+pageSize]))
	}
	var zero [48]byte
	for _, s := range sections {
		switch s.Type {
		case SectionSecMem, SectionSVSMCAA, SectionKernelHashes:
			for off := uint64(0); off < uint64(s.Size); off += pageSize {
				c.update(pageZero, uint64(s.GPA)+off, zero)
			}
		case SectionSecrets:
			c.update(pageSecrets, uint64(s.GPA), zero)
		case SectionCPUID:
			c.update(pageCPUID, uint64(s.GPA), zero)
		}
	}
	bsp, ap := sha512.Sum384(vmsa(bspEIP, o)), sha512.Sum384(vmsa(apEIP, o))
	for i := range o.VCPUs {
		if i == 0 {
			c.update(pageVMSA, vmsaGPA, bsp)
		} else {
			c.update(pageVMSA, vmsaGPA, ap)
		}
	}
	return c.ld, nil
}
