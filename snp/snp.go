// Package snp computes the launch digest (the MEASUREMENT of an
// attestation report) of an AMD SEV-SNP guest launched by QEMU with an
// OVMF image: a SHA-384 chain over the PAGE_INFO of every page the host
// adds before launch (SEV Secure Nested Paging Firmware ABI, 8.17,
// SNP_LAUNCH_UPDATE): the firmware's pages, the pages the firmware's SEV
// metadata asks for, then one VMSA page per vCPU.
//
// With a direct boot (QEMU's kernel-hashes=on), the SNP_KERNEL_HASHES page
// holds the SHA-256 of the kernel, initrd and command line; Cut splits a
// launch at that page so that the digest of any command line costs a few
// pages of hashing. Only QEMU's initial register state is modelled.
package snp

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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

// PageSize is the size of a guest page.
const PageSize = pageSize

// HashTableSize is the size of the SEV hashes table in its page, padded
// to 16 bytes.
const HashTableSize = paddedHashTableSize

// KnownPageType reports whether t is a PAGE_INFO page type a launch of
// this package's model adds (normal, VMSA, zero, secrets, CPUID).
func KnownPageType(t byte) bool {
	switch t {
	case pageNormal, pageVMSA, pageZero, pageSecrets, pageCPUID:
		return true
	}
	return false
}

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
	// Boot is the direct boot the SNP_KERNEL_HASHES page records; nil
	// when QEMU boots the firmware alone (the page is then zeros).
	Boot *DirectBoot
	// FirmwareDigest, when set, is the launch digest after the firmware's
	// pages (sev-snp-measure's --snp-ovmf-hash): they are not hashed
	// again, and the image need only hold the firmware's last pages, with
	// its OVMF table and SEV metadata.
	FirmwareDigest *[48]byte
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

// DirectBoot is what QEMU measures of a direct boot (-kernel, -initrd,
// -append with kernel-hashes=on): the SHA-256 of the kernel, of the
// initrd (of no bytes without one) and of the command line with its
// terminating NUL, in the SEV hashes table on the SNP_KERNEL_HASHES page.
type DirectBoot struct {
	Kernel, Initrd, Cmdline [32]byte
}

// NewDirectBoot returns the direct boot of a kernel, an initrd (nil for
// none) and a command line.
func NewDirectBoot(kernel, initrd []byte, cmdline string) *DirectBoot {
	return &DirectBoot{Kernel: sha256.Sum256(kernel), Initrd: sha256.Sum256(initrd), Cmdline: CmdlineHash(cmdline)}
}

// CmdlineHash is the SHA-256 of a kernel command line as the SEV hashes
// table records it: with its terminating NUL.
func CmdlineHash(cmdline string) [32]byte {
	var buf [256]byte
	return sha256.Sum256(append(append(buf[:0], cmdline...), 0))
}

// The SEV hashes table (QEMU target/i386/sev.c, SevHashTable): a GUIDed
// header and three GUIDed entries of a SHA-256 each, padded to 16 bytes.
const (
	guidHashTable       = "9438d606-4f22-4cc9-b479-a793d411fd21"
	guidHashTableKernel = "4de79437-abd2-427f-b835-d5b172d2045b"
	guidHashTableInitrd = "44baf731-3a2f-4bd7-9af1-41e29169781d"
	guidHashTableCmd    = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
	guidHashTableRV     = "7255371f-3a3b-4b04-927b-1da6efa8d454"
	hashEntrySize       = 16 + 2 + 32
	hashTableSize       = 16 + 2 + 3*hashEntrySize
	paddedHashTableSize = (hashTableSize + 15) &^ 15
)

// The SEV hashes table's GUIDs, encoded once.
var (
	hashTableGUID   = ovmf.GUID(guidHashTable)
	hashEntryGUIDs  = [3][16]byte{ovmf.GUID(guidHashTableCmd), ovmf.GUID(guidHashTableInitrd), ovmf.GUID(guidHashTableKernel)}
	hashTableHeader = func() (h [18]byte) {
		copy(h[:], hashTableGUID[:])
		binary.LittleEndian.PutUint16(h[16:], hashTableSize)
		return h
	}()
)

// hashesPage writes the SNP_KERNEL_HASHES page of a direct boot into p (a
// zeroed page): the SEV hashes table at offset off.
func hashesPage(p *[pageSize]byte, b *DirectBoot, off int) {
	t := p[off:]
	copy(t, hashTableHeader[:])
	e := t[18:]
	for i, sum := range [3]*[32]byte{&b.Cmdline, &b.Initrd, &b.Kernel} {
		copy(e, hashEntryGUIDs[i][:])
		binary.LittleEndian.PutUint16(e[16:], hashEntrySize)
		copy(e[18:], sum[:])
		e = e[hashEntrySize:]
	}
}

// hashTableOffset is where in its page the firmware expects the SEV
// hashes table (the SEV hash table reset-vector block of its OVMF table),
// checked to lie in the SNP_KERNEL_HASHES section.
func hashTableOffset(fw []byte, s Section) (int, error) {
	blk, err := ovmf.Block(fw, guidHashTableRV)
	if err != nil || len(blk) < 4 {
		return 0, fmt.Errorf("%w: a direct boot needs the SEV hashes table block: %v", ErrFirmware, err)
	}
	gpa := uint64(binary.LittleEndian.Uint32(blk))
	if gpa < uint64(s.GPA) || gpa%pageSize+paddedHashTableSize > pageSize || gpa-uint64(s.GPA) >= pageSize {
		return 0, fmt.Errorf("%w: SEV hashes table at %#x is not within the first page of the SNP_KERNEL_HASHES section at %#x", ErrFirmware, gpa, s.GPA)
	}
	return int(gpa % pageSize), nil
}

// Record is the PAGE_INFO of one page added at launch, without the digest
// it chains onto.
type Record struct {
	Type     byte     `json:"type"`
	GPA      uint64   `json:"gpa"`
	Contents [48]byte `json:"contents"` // SHA-384 of the page; zeros for zero, secrets, CPUID pages
}

// Launch is a launch with direct boot cut at its SNP_KERNEL_HASHES page:
// the digest of every page before it, where the hashes table lies, and
// the pages after it. The launch digest of any command line is then a
// few kilobytes of hashing (Digest), which is how a group's members
// derive a VM member whose command line carries the group's table.
type Launch struct {
	Prefix      [48]byte // launch digest before the hashes page
	HashesGPA   uint64   // the hashes page
	TableOffset int      // the SEV hashes table's offset in that page
	Kernel      [32]byte // SHA-256 of the kernel
	Initrd      [32]byte // SHA-256 of the initrd
	Suffix      []Record // the pages after the hashes page, in order
}

// Digest returns the launch digest with a command line whose SHA-256 (with
// its NUL, as CmdlineHash) is cmdline.
func (l *Launch) Digest(cmdline [32]byte) ([48]byte, error) {
	if l.TableOffset < 0 || l.TableOffset+paddedHashTableSize > pageSize {
		return [48]byte{}, fmt.Errorf("%w: SEV hashes table at %#x does not fit its page", ErrFirmware, l.TableOffset)
	}
	c := chain{ld: l.Prefix}
	var page [pageSize]byte
	hashesPage(&page, &DirectBoot{Kernel: l.Kernel, Initrd: l.Initrd, Cmdline: cmdline}, l.TableOffset)
	c.update(pageNormal, l.HashesGPA, sha512.Sum384(page[:]))
	for _, r := range l.Suffix {
		c.update(r.Type, r.GPA, r.Contents)
	}
	return c.ld, nil
}

// LaunchDigest returns the launch digest of a guest QEMU launches with the
// OVMF image fw (mapped to end at 4 GiB) and options o: the firmware's
// pages, then each SEV metadata section in order (zero pages for
// SNP_SEC_MEM and SVSM_CAA; the secrets and CPUID pages; the
// SNP_KERNEL_HASHES pages, as zeros or, with a direct boot, the SEV hashes
// table), then the VMSA of each vCPU (the first at the reset vector, the
// others at the SEV-ES reset block's).
func LaunchDigest(fw []byte, o Options) ([48]byte, error) {
	var c chain
	err := launch(fw, o, func(typ byte, gpa uint64, contents [48]byte) { c.update(typ, gpa, contents) }, &c, nil)
	return c.ld, err
}

// Cut returns the launch of fw with direct boot o.Boot cut at its hashes
// page (o.Boot's command line is not used).
func Cut(fw []byte, o Options) (*Launch, error) {
	if o.Boot == nil {
		return nil, fmt.Errorf("%w: cutting a launch at its hashes page needs a direct boot", ErrFirmware)
	}
	var c chain
	var l *Launch
	err := launch(fw, o, func(typ byte, gpa uint64, contents [48]byte) {
		if l == nil {
			c.update(typ, gpa, contents)
			return
		}
		l.Suffix = append(l.Suffix, Record{Type: typ, GPA: gpa, Contents: contents})
	}, &c, func(gpa uint64, off int) {
		l = &Launch{Prefix: c.ld, HashesGPA: gpa, TableOffset: off, Kernel: o.Boot.Kernel, Initrd: o.Boot.Initrd}
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// launch walks the pages of a launch, calling page for each, or hashes,
// when not nil, for the page of a direct boot's hashes table; c is the
// chain page extends, seeded here with o.FirmwareDigest.
func launch(fw []byte, o Options, page func(typ byte, gpa uint64, contents [48]byte), c *chain, hashes func(gpa uint64, off int)) error {
	switch {
	case len(fw) == 0 || len(fw)%pageSize != 0 || len(fw) > fourGiB:
		return fmt.Errorf("%w: %d bytes is not a whole number of pages below 4 GiB", ErrFirmware, len(fw))
	case o.VCPUs < 1 || o.VCPUs > maxVCPUs:
		return fmt.Errorf("%w: %d vCPUs, want 1 to %d", ErrFirmware, o.VCPUs, maxVCPUs)
	}
	sections, err := Metadata(fw)
	if err != nil {
		return err
	}
	apEIP, err := resetEIP(fw)
	if err != nil {
		return err
	}
	if o.Boot != nil && !slices.ContainsFunc(sections, func(s Section) bool { return s.Type == SectionKernelHashes }) {
		return fmt.Errorf("%w: a direct boot needs an SNP_KERNEL_HASHES section, which this firmware's SEV metadata lacks (an OVMF built from OvmfPkg/AmdSev has one)", ErrFirmware)
	}
	if o.FirmwareDigest != nil {
		c.ld = *o.FirmwareDigest
	} else {
		base := uint64(fourGiB - len(fw))
		for off := 0; off < len(fw); off += pageSize {
			page(pageNormal, base+uint64(off), sha512.Sum384(fw[off:off+pageSize]))
		}
	}
	var zero [48]byte
	for _, s := range sections {
		switch s.Type {
		case SectionKernelHashes:
			if o.Boot == nil {
				for off := uint64(0); off < uint64(s.Size); off += pageSize {
					page(pageZero, uint64(s.GPA)+off, zero)
				}
				continue
			}
			if s.Size != pageSize {
				return fmt.Errorf("%w: SNP_KERNEL_HASHES section of %#x bytes, want one page", ErrFirmware, s.Size)
			}
			off, err := hashTableOffset(fw, s)
			if err != nil {
				return err
			}
			if hashes != nil {
				hashes(uint64(s.GPA), off)
				continue
			}
			var p [pageSize]byte
			hashesPage(&p, o.Boot, off)
			page(pageNormal, uint64(s.GPA), sha512.Sum384(p[:]))
		case SectionSecMem, SectionSVSMCAA:
			for off := uint64(0); off < uint64(s.Size); off += pageSize {
				page(pageZero, uint64(s.GPA)+off, zero)
			}
		case SectionSecrets:
			page(pageSecrets, uint64(s.GPA), zero)
		case SectionCPUID:
			page(pageCPUID, uint64(s.GPA), zero)
		}
	}
	bsp, ap := sha512.Sum384(vmsa(bspEIP, o)), sha512.Sum384(vmsa(apEIP, o))
	for i := range o.VCPUs {
		if i == 0 {
			page(pageVMSA, vmsaGPA, bsp)
		} else {
			page(pageVMSA, vmsaGPA, ap)
		}
	}
	return nil
}
