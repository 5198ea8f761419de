package tdx

import (
	"bytes"
	"cmp"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/magesgx/mage/internal/ovmf"
)

// The RTMRs of a direct boot: QEMU started with -kernel, -initrd and
// -append hands the kernel to OVMF, which measures the platform into
// RTMR0, the kernel image into RTMR1, and the kernel's EFI stub measures
// its command line and initrd into RTMR2.
//
// The event sequence is that of OVMF (edk2 with the TDX measured boot of
// 2024) under QEMU 8.2's q35 machine, as Quex's reproducer
// (quex-tech/td-report-web) models it: the test vectors are its output.
// Other firmware builds order some events otherwise (Google's, for one,
// puts the second separator in RTMR1): for those, replay the TD's own
// event log (ParseEventLog, ReplayRTMRs).

// ErrBoot is wrapped by every refusal of direct-boot inputs.
var ErrBoot = errors.New("tdx: direct boot")

// EV_* event types of the TCG PC Client profile a direct boot uses.
const (
	EventSeparator           = 0x4
	EventTag                 = 0x6
	EventPlatformConfigFlags = 0xa
	EventVariableDriverCfg   = 0x80000001
	EventVariableBoot        = 0x80000002
	EventBootServicesApp     = 0x80000003
	EventAction              = 0x80000007
	EventFirmwareBlob2       = 0x8000000a
	EventHandoffTables2      = 0x8000000b
)

// Boot is a TD's direct boot as QEMU hands it to the firmware.
type Boot struct {
	// Kernel is the -kernel image: a bzImage with an EFI stub, or a
	// unified kernel image (a PE with .linux, and optionally .initrd and
	// .cmdline, sections). It is not modified.
	Kernel []byte
	// Initrd is the -initrd file, or nil for none. An empty one is
	// refused: QEMU would patch the kernel for it while OVMF loads none, a
	// case no reference covers. A unified kernel image carries
	// its own.
	Initrd []byte
	// Cmdline is the -append text: printable ASCII, required with a
	// bzImage (the measurement of an empty one is not modelled), and empty
	// with a unified kernel image (which carries its own).
	Cmdline string
	// Memory is the guest's memory in bytes (-m). It places the initrd,
	// and so changes the kernel's setup header, and sizes the TD HOB.
	Memory uint64
	// ACPITables is QEMU's etc/acpi/tables fw_cfg file for this machine
	// (inside a guest: /sys/firmware/qemu_fw_cfg/by_name/etc/acpi/tables/raw).
	// Only RTMR0 needs it.
	ACPITables []byte
}

// BootEvent is one measurement of a direct boot.
type BootEvent struct {
	RTMR   int      // 0 to 2
	Type   uint32   // EV_*
	Name   string   // what is measured
	Digest [48]byte // SHA-384 of what is measured
}

// Limits on direct-boot inputs, which bound the hashing they cause.
const (
	maxKernel     = 1 << 30
	maxCmdline    = 1 << 16
	maxACPITables = 1 << 20
	maxPESections = 96
)

// KernelRTMRs returns RTMR1 and RTMR2 of a direct boot: they depend only
// on the kernel, initrd, command line and memory size, not on the
// firmware image or ACPI tables.
func KernelRTMRs(b Boot) (rtmr1, rtmr2 [48]byte, err error) {
	evs, err := kernelEvents(b)
	if err != nil {
		return rtmr1, rtmr2, err
	}
	r := replay(evs)
	return r[1], r[2], nil
}

// BootRTMRs returns RTMR0 to RTMR2 of a direct boot of the TDVF image fw
// (RTMR3 starts at zero), and the events that make them, in order.
func BootRTMRs(fw []byte, b Boot) ([3][48]byte, []BootEvent, error) {
	evs, err := BootEvents(fw, b)
	if err != nil {
		return [3][48]byte{}, nil, err
	}
	return replay(evs), evs, nil
}

// replay extends each event into its register.
func replay(evs []BootEvent) [3][48]byte {
	var r [3][48]byte
	for _, e := range evs {
		r[e.RTMR] = Extend(r[e.RTMR], e.Digest)
	}
	return r
}

// BootEvents returns the measurements of a direct boot of the TDVF image
// fw, in the order the firmware makes them.
func BootEvents(fw []byte, b Boot) ([]BootEvent, error) {
	sections, err := ParseMetadata(fw)
	if err != nil {
		return nil, err
	}
	if len(b.ACPITables) == 0 {
		return nil, fmt.Errorf("%w: RTMR0 needs the VM's ACPI tables", ErrBoot)
	}
	vars, err := efiVariables(fw)
	if err != nil {
		return nil, err
	}
	tables, err := parseACPI(b.ACPITables)
	if err != nil {
		return nil, err
	}
	layout, err := memoryLayout(b.Memory)
	if err != nil {
		return nil, err
	}
	hob, err := hobPreimage(sections, layout)
	if err != nil {
		return nil, err
	}
	loader, err := tableLoader(tables)
	if err != nil {
		return nil, err
	}
	kernel, err := kernelEvents(b)
	if err != nil {
		return nil, err
	}

	var evs []BootEvent
	add := func(rtmr int, typ uint32, name string, preimage []byte) {
		evs = append(evs, measured(rtmr, typ, name, preimage))
	}
	add(0, EventHandoffTables2, "TD HOB", hob)
	for _, s := range sections {
		if s.Type == SectionCFV {
			add(0, EventFirmwareBlob2, "configuration firmware volume", fw[s.DataOffset:][:s.DataSize])
		}
	}
	secureBoot := []byte{}
	if _, pk := vars["PK"]; pk {
		if v, ok := vars["SecureBootEnable"]; !ok || len(v) > 0 && v[0] == 1 {
			secureBoot = []byte{1}
		}
	}
	add(0, EventVariableDriverCfg, "SecureBoot", driverConfig(ovmf.GUID(guidGlobalVariable), "SecureBoot", secureBoot))
	add(0, EventVariableDriverCfg, "PK", driverConfig(ovmf.GUID(guidGlobalVariable), "PK", vars["PK"]))
	add(0, EventVariableDriverCfg, "KEK", driverConfig(ovmf.GUID(guidGlobalVariable), "KEK", vars["KEK"]))
	add(0, EventVariableDriverCfg, "db", driverConfig(ovmf.GUID(guidImageSecurityDB), "db", vars["db"]))
	add(0, EventVariableDriverCfg, "dbx", driverConfig(ovmf.GUID(guidImageSecurityDB), "dbx", vars["dbx"]))
	add(0, EventSeparator, "separator", make([]byte, 4))
	add(0, EventPlatformConfigFlags, "etc/table-loader", loader)
	add(0, EventPlatformConfigFlags, "etc/acpi/rsdp", rsdp(tables))
	add(0, EventPlatformConfigFlags, "etc/acpi/tables", b.ACPITables)
	// The kernel image, then the boot variables, then the call; the rest
	// of the kernel's events follow the second separator.
	evs = append(evs, kernel[0])
	add(0, EventVariableBoot, "BootOrder", []byte{0, 0})
	add(0, EventVariableBoot, "Boot0000", uiAppBootOption())
	evs = append(evs, kernel[1])
	add(0, EventSeparator, "separator", make([]byte, 4))
	return append(evs, kernel[2:]...), nil
}

// measured is the event that measures preimage.
func measured(rtmr int, typ uint32, name string, preimage []byte) BootEvent {
	return BootEvent{RTMR: rtmr, Type: typ, Name: name, Digest: sha512.Sum384(preimage)}
}

// The firmware's fixed strings.
const (
	actionCallingApp    = "Calling EFI Application from Boot Option"
	actionExitBS        = "Exit Boot Services Invocation"
	actionExitBSDone    = "Exit Boot Services Returned with Success"
	guidGlobalVariable  = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	guidImageSecurityDB = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
	guidAuthVariables   = "aaf32c78-947b-439a-a180-2e144ec37792"
)

// kernelEvents returns the RTMR1 and RTMR2 events in order: the kernel
// image and the call to it first (RTMR1), then, for a unified kernel
// image, its .linux section, then the command line and initrd (RTMR2),
// then the two exit-boot-services actions.
func kernelEvents(b Boot) ([]BootEvent, error) {
	if b.Initrd != nil && len(b.Initrd) == 0 {
		return nil, fmt.Errorf("%w: an empty initrd is not modelled: give none", ErrBoot)
	}
	if len(b.Kernel) > maxKernel {
		return nil, fmt.Errorf("%w: a kernel of %d bytes (at most %d)", ErrBoot, len(b.Kernel), maxKernel)
	}
	layout, err := memoryLayout(b.Memory)
	if err != nil {
		return nil, err
	}
	if pe, err := parsePE(b.Kernel); err != nil {
		return nil, fmt.Errorf("%w: kernel: %w", ErrBoot, err)
	} else if _, uki := pe.section(".linux"); uki && (b.Initrd != nil || b.Cmdline != "") {
		return nil, fmt.Errorf("%w: a unified kernel image carries its own initrd and command line; give neither", ErrBoot)
	}
	// OVMF measures the image as QEMU patched it.
	patched, err := qemuPatchKernel(b.Kernel, len(b.Cmdline), len(b.Initrd), b.Initrd != nil, layout)
	if err != nil {
		return nil, err
	}
	pe, err := parsePE(patched)
	if err != nil {
		return nil, fmt.Errorf("%w: kernel: %w", ErrBoot, err)
	}
	linux, uki := pe.section(".linux")
	initrd, cmdline := b.Initrd, b.Cmdline
	if uki {
		initrd, _ = pe.section(".initrd")
		if c, ok := pe.section(".cmdline"); ok {
			cmdline = string(c)
			if err := checkCmdline(cmdline, "the unified kernel image's .cmdline"); err != nil {
				return nil, err
			}
		}
	} else {
		if b.Cmdline == "" {
			return nil, fmt.Errorf("%w: a bzImage needs a command line: the measurement of an empty one is not modelled", ErrBoot)
		}
		if err := checkCmdline(b.Cmdline, "the command line"); err != nil {
			return nil, err
		}
		if b.Initrd != nil {
			cmdline += " initrd=initrd"
		}
	}
	kernelHash, err := authenticodeHash(patched, pe)
	if err != nil {
		return nil, fmt.Errorf("%w: kernel: %w", ErrBoot, err)
	}
	var evs []BootEvent
	add := func(rtmr int, typ uint32, name string, preimage []byte) {
		evs = append(evs, measured(rtmr, typ, name, preimage))
	}
	name := "kernel"
	if uki {
		name = "unified kernel image"
	}
	evs = append(evs, BootEvent{RTMR: 1, Type: EventBootServicesApp, Name: name, Digest: kernelHash})
	add(1, EventAction, actionCallingApp, []byte(actionCallingApp))
	if uki {
		inner, err := parsePE(linux)
		if err != nil {
			return nil, fmt.Errorf("%w: the unified kernel image's .linux: %w", ErrBoot, err)
		}
		h, err := authenticodeHash(linux, inner)
		if err != nil {
			return nil, fmt.Errorf("%w: the unified kernel image's .linux: %w", ErrBoot, err)
		}
		evs = append(evs, BootEvent{RTMR: 1, Type: EventBootServicesApp, Name: "kernel", Digest: h})
	}
	if cmdline != "" {
		// LOADED_IMAGE::LoadOptions: the command line in UCS-2 with its
		// terminating zero.
		add(2, EventTag, "LOADED_IMAGE::LoadOptions", ucs2z(cmdline))
	}
	if len(initrd) > 0 {
		add(2, EventTag, "initrd", initrd)
	}
	add(1, EventAction, actionExitBS, []byte(actionExitBS))
	add(1, EventAction, actionExitBSDone, []byte(actionExitBSDone))
	return evs, nil
}

// checkCmdline refuses what the model does not cover: bytes outside
// printable ASCII, which OVMF and the reference would encode differently.
func checkCmdline(s, what string) error {
	if len(s) > maxCmdline {
		return fmt.Errorf("%w: %s is %d bytes (at most %d)", ErrBoot, what, len(s), maxCmdline)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("%w: %s has byte %#02x at %d: only printable ASCII is modelled", ErrBoot, what, s[i], i)
		}
	}
	return nil
}

// ucs2z encodes s in UTF-16LE with a terminating zero.
func ucs2z(s string) []byte {
	u := utf16.Encode([]rune(s + "\x00"))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(out[2*i:], c)
	}
	return out
}

// QEMU's memory map of a q35 TD: memory below 4 GiB up to 2 GiB, or all
// of it when it fits under 2.75 GiB; the rest from 4 GiB.
type layout struct {
	below4G, above4G uint64
}

const (
	highStart    = 1 << 32
	maxGuestRAM  = 1 << 46
	acpiDataSize = 0x20000 + 0x8000 // QEMU's ACPI_DATA_SIZE, kept below the initrd
)

func memoryLayout(total uint64) (layout, error) {
	if total < 64<<20 || total > maxGuestRAM {
		return layout{}, fmt.Errorf("%w: guest memory of %d bytes (want 64 MiB to 64 TiB)", ErrBoot, total)
	}
	low := uint64(0xb0000000)
	if total >= low {
		low = 0x80000000
	}
	if total >= low {
		return layout{below4G: low, above4G: total - low}, nil
	}
	return layout{below4G: total}, nil
}

// qemuPatchKernel returns a copy of the kernel with the setup header
// fields QEMU's x86 Linux loader writes (hw/i386/x86.c): the loader type,
// the command line's place, the heap end, and the initrd's place and size.
// OVMF measures the image as patched.
func qemuPatchKernel(kernel []byte, cmdlineLen, initrdLen int, hasInitrd bool, l layout) ([]byte, error) {
	if len(kernel) < 0x240 {
		return nil, fmt.Errorf("%w: a kernel of %d bytes has no setup header", ErrBoot, len(kernel))
	}
	k := bytes.Clone(kernel)
	le := binary.LittleEndian
	cmdlineSize := uint32(cmdlineLen+16) &^ 15
	protocol := uint16(0)
	if string(k[0x202:0x206]) == "HdrS" {
		protocol = le.Uint16(k[0x206:])
	}
	var realAddr, cmdlineAddr uint32
	if protocol < 0x202 || k[0x211]&0x01 == 0 {
		realAddr, cmdlineAddr = 0x90000, 0x9a000-cmdlineSize
	} else {
		realAddr, cmdlineAddr = 0x10000, 0x20000
	}
	var initrdMax uint64
	switch {
	case protocol >= 0x20c && le.Uint16(k[0x236:])&2 != 0:
		initrdMax = 0xffffffff
	case protocol >= 0x203:
		initrdMax = uint64(le.Uint32(k[0x22c:]))
	default:
		initrdMax = 0x37ffffff
	}
	if initrdMax >= l.below4G-acpiDataSize {
		initrdMax = l.below4G - acpiDataSize - 1
	}
	if protocol >= 0x202 {
		le.PutUint32(k[0x228:], cmdlineAddr)
	} else {
		le.PutUint16(k[0x20:], 0xa33f)
		le.PutUint16(k[0x22:], uint16(cmdlineAddr-realAddr))
	}
	if protocol >= 0x200 {
		k[0x210] = 0xb0
	}
	if protocol >= 0x201 {
		k[0x211] |= 0x80
		le.PutUint16(k[0x224:], uint16(cmdlineAddr-realAddr-0x200))
	}
	if hasInitrd {
		if protocol < 0x200 {
			return nil, fmt.Errorf("%w: the kernel's boot protocol %#x takes no initrd", ErrBoot, protocol)
		}
		if uint64(initrdLen) >= initrdMax {
			return nil, fmt.Errorf("%w: an initrd of %d bytes does not fit below %#x", ErrBoot, initrdLen, initrdMax)
		}
		le.PutUint32(k[0x218:], uint32((initrdMax-uint64(initrdLen))&^4095))
		le.PutUint32(k[0x21c:], uint32(initrdLen))
	}
	return k, nil
}

// peFile is what the Authenticode hash needs of a PE image.
type peFile struct {
	file         []byte
	optHeader    int // offset of the optional header
	fixedOptSize int // its size without the data directories
	headers      uint32
	directories  uint32
	sections     []peSection
}

type peSection struct {
	name          string
	virtualSize   uint32
	rawSize, data uint32
}

// parsePE reads the headers of a PE image, refusing any that point
// outside it, and sections that together hold more bytes than the file
// (so a hostile image cannot make the hash read the file many times).
func parsePE(b []byte) (*peFile, error) {
	le := binary.LittleEndian
	if len(b) < 0x40 || b[0] != 'M' || b[1] != 'Z' {
		return nil, errors.New("not a PE image: no MZ header")
	}
	lfanew := uint64(le.Uint32(b[0x3c:]))
	if lfanew+24 > uint64(len(b)) || string(b[lfanew:lfanew+4]) != "PE\x00\x00" {
		return nil, errors.New("not a PE image: no PE signature")
	}
	fh := int(lfanew) + 4
	nsec, optSize := int(le.Uint16(b[fh+2:])), int(le.Uint16(b[fh+16:]))
	p := &peFile{file: b, optHeader: fh + 20}
	if p.optHeader+2 > len(b) {
		return nil, errors.New("PE optional header past the end of the file")
	}
	switch le.Uint16(b[p.optHeader:]) {
	case 0x10b:
		p.fixedOptSize = 96
	case 0x20b:
		p.fixedOptSize = 112
	default:
		return nil, fmt.Errorf("PE optional header magic %#x", le.Uint16(b[p.optHeader:]))
	}
	if p.optHeader+p.fixedOptSize > len(b) {
		return nil, errors.New("PE optional header past the end of the file")
	}
	p.headers = le.Uint32(b[p.optHeader+60:])
	p.directories = le.Uint32(b[p.optHeader+p.fixedOptSize-4:])
	if uint64(p.headers) > uint64(len(b)) {
		return nil, fmt.Errorf("PE headers of %#x bytes in a file of %#x", p.headers, len(b))
	}
	if nsec > maxPESections {
		return nil, fmt.Errorf("%d PE sections (at most %d)", nsec, maxPESections)
	}
	var total uint64
	for i := range nsec {
		at := p.optHeader + optSize + 40*i
		if at+40 > len(b) {
			return nil, fmt.Errorf("PE section header %d past the end of the file", i)
		}
		s := peSection{name: string(bytes.TrimRight(b[at:at+8], "\x00")), virtualSize: le.Uint32(b[at+8:]),
			rawSize: le.Uint32(b[at+16:]), data: le.Uint32(b[at+20:])}
		if uint64(s.data)+uint64(s.rawSize) > uint64(len(b)) {
			return nil, fmt.Errorf("PE section %q at [%#x, +%#x) past the end of the file", s.name, s.data, s.rawSize)
		}
		total += uint64(s.rawSize)
		p.sections = append(p.sections, s)
	}
	if total > uint64(len(b)) {
		return nil, fmt.Errorf("PE sections hold %#x bytes of a %#x-byte file", total, len(b))
	}
	return p, nil
}

// section returns the contents of the first section named name, without
// its file padding.
func (p *peFile) section(name string) ([]byte, bool) {
	for _, s := range p.sections {
		if s.name == name {
			return p.file[s.data:][:min(s.virtualSize, s.rawSize)], true
		}
	}
	return nil, false
}

// authenticodeHash returns the SHA-384 of a PE image as OVMF measures it
// (the Authenticode digest): the headers without the checksum and the
// certificate directory entry, the sections in file order, then the bytes
// after them except the certificate table.
func authenticodeHash(b []byte, p *peFile) ([48]byte, error) {
	le := binary.LittleEndian
	h := sha512.New384()
	checksum := p.optHeader + 0x40
	const securityDir = 4
	h.Write(b[:checksum])
	if p.directories <= securityDir {
		if err := writeRange(h, b, checksum+4, int(p.headers)); err != nil {
			return [48]byte{}, err
		}
	} else {
		dir := p.optHeader + p.fixedOptSize + securityDir*8
		if dir+8 > int(p.headers) {
			return [48]byte{}, errors.New("PE certificate directory past the headers")
		}
		h.Write(b[checksum+4 : dir])
		h.Write(b[dir+8 : p.headers])
	}
	hashed := uint64(p.headers)
	sorted := slices.Clone(p.sections)
	slices.SortStableFunc(sorted, func(a, b peSection) int { return cmp.Compare(a.data, b.data) })
	for _, s := range sorted {
		if s.rawSize != 0 {
			h.Write(b[s.data:][:s.rawSize])
			hashed += uint64(s.rawSize)
		}
	}
	if size := uint64(len(b)); size > hashed {
		var certSize uint64
		if p.directories > securityDir {
			if at := p.optHeader + p.fixedOptSize + securityDir*8 + 4; at+4 <= len(b) {
				certSize = uint64(le.Uint32(b[at:]))
			}
		}
		switch {
		case size > hashed+certSize:
			h.Write(b[hashed : size-certSize])
		case size < hashed+certSize:
			return [48]byte{}, fmt.Errorf("PE certificate table of %#x bytes past the end of the file", certSize)
		}
	}
	return [48]byte(h.Sum(nil)), nil
}

func writeRange(h hash.Hash, b []byte, from, to int) error {
	if from > to || to > len(b) {
		return fmt.Errorf("PE headers end at %#x, before their checksum", to)
	}
	h.Write(b[from:to])
	return nil
}

// efiVariables returns the variables of the image's authenticated
// variable store that are in the ADDED state, by name.
func efiVariables(fw []byte) (map[string][]byte, error) {
	guid := ovmf.GUID(guidAuthVariables)
	at := bytes.Index(fw, guid[:])
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: variable store: %s", ErrFirmware, fmt.Sprintf(format, a...))
	}
	if at < 0 {
		return nil, bad("no authenticated variable store")
	}
	le := binary.LittleEndian
	if at+28 > len(fw) {
		return nil, bad("header past the end of the image")
	}
	size := uint64(le.Uint32(fw[at+16:]))
	if fw[at+20] != 0x5a || fw[at+21] != 0xfe {
		return nil, bad("format %#x, state %#x (want 0x5a, 0xfe)", fw[at+20], fw[at+21])
	}
	end := uint64(at) + size
	if end > uint64(len(fw)) || size < 28 {
		return nil, bad("a store of %#x bytes at %#x", size, at)
	}
	vars := map[string][]byte{}
	for off := uint64(at + 28); off+60 <= end; {
		if le.Uint16(fw[off:]) != 0x55aa {
			break
		}
		state := fw[off+2]
		nameSize, dataSize := uint64(le.Uint32(fw[off+36:])), uint64(le.Uint32(fw[off+40:]))
		name := off + 60
		data := name + nameSize
		if data+dataSize > end {
			return nil, bad("variable at %#x runs past the store", off)
		}
		if state == 0x3f {
			vars[ucs2Name(fw[name:data])] = fw[data : data+dataSize]
		}
		off = (data + dataSize + 3) &^ 3
	}
	return vars, nil
}

// ucs2Name decodes a variable's UTF-16LE name without its last unit (the
// terminating zero).
func ucs2Name(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	if len(u) > 0 {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}

// driverConfig is the UEFI_VARIABLE_DATA of an EV_EFI_VARIABLE_DRIVER_CONFIG
// event: the vendor GUID, the name's length in characters, the data's
// length, the UTF-16 name without its zero, and the data.
func driverConfig(guid [16]byte, name string, data []byte) []byte {
	out := append([]byte{}, guid[:]...)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(name)))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(data)))
	n := ucs2z(name)
	out = append(out, n[:len(n)-2]...)
	return append(out, data...)
}

// uiAppBootOption is OVMF's Boot0000, the UI application in the firmware
// volume: an EFI_LOAD_OPTION (active, a 0x2c-byte device path, "UiApp").
func uiAppBootOption() []byte {
	out := []byte{0x09, 0x01, 0x00, 0x00, 0x2c, 0x00}
	out = append(out, ucs2z("UiApp")...)
	fv := ovmf.GUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
	app := ovmf.GUID("462caa21-7614-4503-836e-8ab6f4662331")
	out = append(out, 0x04, 0x07, 0x14, 0x00)
	out = append(out, fv[:]...)
	out = append(out, 0x04, 0x06, 0x14, 0x00)
	out = append(out, app[:]...)
	return append(out, 0x7f, 0xff, 0x04, 0x00)
}

// acpiTable is one table of QEMU's etc/acpi/tables blob.
type acpiTable struct {
	sig         string
	off, length uint32
}

// parseACPI walks the tables of the blob up to its zero padding.
func parseACPI(b []byte) ([]acpiTable, error) {
	if len(b) > maxACPITables {
		return nil, fmt.Errorf("%w: ACPI tables of %d bytes (at most %d)", ErrBoot, len(b), maxACPITables)
	}
	var out []acpiTable
	for off := uint64(0); off+8 <= uint64(len(b)); {
		sig := string(b[off : off+4])
		if sig == "\x00\x00\x00\x00" {
			break
		}
		n := uint64(binary.LittleEndian.Uint32(b[off+4:]))
		if n < 36 || off+n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: ACPI table %q at %#x of %d bytes", ErrBoot, sig, off, n)
		}
		out = append(out, acpiTable{sig: sig, off: uint32(off), length: uint32(n)})
		off += n
	}
	return out, nil
}

// rsdp is QEMU's etc/acpi/rsdp before the loader patches it: the
// ACPI 1.0 RSDP with OEM ID "BOCHS " and the RSDT's offset in the tables.
func rsdp(tables []acpiTable) []byte {
	out := make([]byte, 20)
	copy(out, "RSD PTR ")
	copy(out[9:], "BOCHS ")
	for _, t := range tables {
		if t.sig == "RSDT" {
			binary.LittleEndian.PutUint32(out[16:], t.off)
			break
		}
	}
	return out
}

// tableLoader is QEMU's etc/table-loader for the tables (BIOS linker
// commands of 128 bytes in a 4 KiB file): allocate the RSDP and the
// tables; point FADT's FACS, DSDT and X_DSDT and the RSDT's entries into
// the tables; checksum every table but FACS; point the RSDP at the RSDT
// and checksum it.
func tableLoader(tables []acpiTable) ([]byte, error) {
	const (
		rsdpFile   = "etc/acpi/rsdp"
		tablesFile = "etc/acpi/tables"
	)
	out := make([]byte, 0, 4096)
	cmd := func(kind uint32) []byte {
		out = append(out, make([]byte, 128)...)
		c := out[len(out)-128:]
		binary.LittleEndian.PutUint32(c, kind)
		return c
	}
	allocate := func(file string, align uint32, zone byte) {
		c := cmd(1)
		copy(c[4:60], file)
		binary.LittleEndian.PutUint32(c[60:], align)
		c[64] = zone
	}
	pointer := func(dst, src string, off uint32, size byte) {
		c := cmd(2)
		copy(c[4:60], dst)
		copy(c[60:116], src)
		binary.LittleEndian.PutUint32(c[116:], off)
		c[120] = size
	}
	checksum := func(file string, off, start, length uint32) {
		c := cmd(3)
		copy(c[4:60], file)
		binary.LittleEndian.PutUint32(c[60:], off)
		binary.LittleEndian.PutUint32(c[64:], start)
		binary.LittleEndian.PutUint32(c[68:], length)
	}
	allocate(rsdpFile, 16, 2)
	allocate(tablesFile, 64, 1)
	for _, t := range tables {
		switch t.sig {
		case "FACP":
			pointer(tablesFile, tablesFile, t.off+36, 4)
			pointer(tablesFile, tablesFile, t.off+40, 4)
			pointer(tablesFile, tablesFile, t.off+140, 8)
		case "RSDT":
			for i := range uint32(4) {
				pointer(tablesFile, tablesFile, t.off+36+4*i, 4)
			}
		}
		if t.sig != "FACS" {
			checksum(tablesFile, t.off+9, t.off, t.length)
		}
		if len(out) > 4096-2*128 {
			return nil, fmt.Errorf("%w: %d ACPI tables need more than QEMU's 4 KiB table loader", ErrBoot, len(tables))
		}
	}
	pointer(rsdpFile, tablesFile, 16, 4)
	checksum(rsdpFile, 8, 0, 20)
	return append(out, make([]byte, 4096-len(out))...), nil
}

// hobPreimage is the part of the TD HOB the firmware measures: the PHIT
// and a resource descriptor for each range of guest memory (the TD HOB and
// temporary memory accepted, everything else unaccepted), without the
// end-of-list HOB.
func hobPreimage(sections []Section, l layout) ([]byte, error) {
	var hob *Section
	var mem []Section
	for i, s := range sections {
		switch s.Type {
		case SectionTDHOB:
			hob = &sections[i]
			mem = append(mem, s)
		case SectionTempMem:
			mem = append(mem, s)
		}
	}
	slices.SortStableFunc(mem, func(a, b Section) int { return cmp.Compare(a.Base, b.Base) })
	type rng struct {
		start, end uint64
		accepted   bool
	}
	var ranges []rng
	var at uint64
	for _, s := range mem {
		if s.Base > at {
			ranges = append(ranges, rng{at, s.Base, false})
		}
		ranges = append(ranges, rng{s.Base, s.Base + s.Size, true})
		at = s.Base + s.Size
	}
	if at < l.below4G {
		ranges = append(ranges, rng{at, l.below4G, false})
	}
	if l.above4G > 0 {
		ranges = append(ranges, rng{highStart, highStart + l.above4G, false})
	}
	const phit, resource, end = 56, 48, 8
	n := phit + resource*len(ranges)
	if uint64(n+end) > hob.Size {
		return nil, fmt.Errorf("%w: a TD HOB of %#x bytes cannot describe %d memory ranges", ErrFirmware, hob.Size, len(ranges))
	}
	out := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint16(out, 0x0001) // EFI_HOB_TYPE_HANDOFF
	le.PutUint16(out[2:], phit)
	le.PutUint32(out[8:], 0x0009) // PHIT version
	le.PutUint64(out[48:], hob.Base+uint64(n+end))
	for i, r := range ranges {
		d := out[phit+resource*i:]
		le.PutUint16(d, 0x0003) // EFI_HOB_TYPE_RESOURCE_DESCRIPTOR
		le.PutUint16(d[2:], resource)
		typ := uint32(7) // EFI_RESOURCE_MEMORY_UNACCEPTED
		if r.accepted {
			typ = 0 // EFI_RESOURCE_SYSTEM_MEMORY
		}
		le.PutUint32(d[24:], typ)
		le.PutUint32(d[28:], 0x7) // present, initialized, tested
		le.PutUint64(d[32:], r.start)
		le.PutUint64(d[40:], r.end-r.start)
	}
	return out, nil
}

// ParseMemory reads a guest memory size as QEMU's -m takes it: a number
// with an optional K, M, G or T suffix (binary units), megabytes when it
// has none.
func ParseMemory(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	shift := 20
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K', 'k':
			shift, t = 10, t[:n-1]
		case 'M', 'm':
			shift, t = 20, t[:n-1]
		case 'G', 'g':
			shift, t = 30, t[:n-1]
		case 'T', 't':
			shift, t = 40, t[:n-1]
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v == 0 || v > maxGuestRAM>>shift {
		return 0, fmt.Errorf("%w: memory size %q: want a number with K, M, G or T (megabytes without), at most 64T", ErrBoot, s)
	}
	return v << shift, nil
}
