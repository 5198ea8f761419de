package main

// magectl tdx: Intel TDX confidential VMs: the MRTD of a TDVF image, and
// the RTMRs of a direct boot.

import (
	"encoding/hex"
	"fmt"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/tdx"
)

func runTDX(e *env, args []string) error {
	return dispatch(e, args, "tdx", `Usage: magectl tdx <measure> [flags]

  measure FIRMWARE    the MRTD of a TD launched with this TDVF (OVMF) image,
                      and the RTMRs of its direct boot of a kernel

Run "magectl tdx <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runTDXMeasure})
}

type tdxMeasure struct {
	File     string        `json:"file"`
	MRTD     string        `json:"mrtd"`
	Sections []tdx.Section `json:"sections"`
	// With a direct boot: RTMR0 (with --acpi-tables), RTMR1 and RTMR2,
	// and the events that make them.
	RTMR0  string         `json:"rtmr0,omitempty"`
	RTMR1  string         `json:"rtmr1,omitempty"`
	RTMR2  string         `json:"rtmr2,omitempty"`
	Events []tdxBootEvent `json:"events,omitempty"`
}

type tdxBootEvent struct {
	RTMR   int    `json:"rtmr"`
	Type   string `json:"type"`
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Limits on the direct-boot files magectl reads.
const (
	maxKernelFile = 256 << 20
	maxInitrdFile = 1 << 30
	maxACPIFile   = 1 << 20
)

// readBootFiles reads a direct boot's kernel and, where named, its initrd
// and ACPI tables, each bounded.
func readBootFiles(b *tdx.Boot, kernel, initrd, acpi string) error {
	for _, f := range []struct {
		name string
		max  int64
		to   *[]byte
	}{{kernel, maxKernelFile, &b.Kernel}, {initrd, maxInitrdFile, &b.Initrd}, {acpi, maxACPIFile, &b.ACPITables}} {
		if f.name == "" {
			continue
		}
		var err error
		if *f.to, err = readBounded(f.name, f.max); err != nil {
			return err
		}
	}
	return nil
}

func runTDXMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "tdx measure", "tdx measure FIRMWARE [--kernel FILE --append CMDLINE [--initrd FILE] --memory SIZE [--acpi-tables FILE]] [--json]")
	kernel := fs.String("kernel", "", "direct boot: the kernel `file` QEMU is given with -kernel (a bzImage, or a unified kernel image)")
	initrd := fs.String("initrd", "", "direct boot: the initrd `file` (-initrd)")
	cmdline := fs.String("append", "", "direct boot: the kernel command `line` (-append; required with a bzImage)")
	memory := fs.String("memory", "", "direct boot: the guest's memory `size` as QEMU's -m takes it (2G, or megabytes) (required with --kernel)")
	acpi := fs.String("acpi-tables", "", "direct boot: the VM's ACPI tables `file` (QEMU's etc/acpi/tables; in a guest, /sys/firmware/qemu_fw_cfg/by_name/etc/acpi/tables/raw), for RTMR0")
	jsonOut := fs.Bool("json", false, "print JSON (the MRTD, the TDX metadata sections, and a direct boot's RTMRs and events)")
	arg, err := parseOneArg(fs, args, "firmware image")
	if err != nil {
		return err
	}
	if *kernel == "" && (*initrd != "" || *cmdline != "" || *memory != "" || *acpi != "") {
		return usagef("--initrd, --append, --memory and --acpi-tables describe a direct boot: they need --kernel")
	}
	var boot tdx.Boot
	if *kernel != "" {
		if *memory == "" {
			return usagef("--memory is required with --kernel (it places the initrd)")
		}
		if boot.Memory, err = tdx.ParseMemory(*memory); err != nil {
			return usagef("--memory: %v", err)
		}
		boot.Cmdline = *cmdline
		if err := readBootFiles(&boot, *kernel, *initrd, *acpi); err != nil {
			return err
		}
	}
	fw, err := readBounded(arg, maxFirmware)
	if err != nil {
		return err
	}
	mrtd, err := tdx.MRTD(fw)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	out := tdxMeasure{File: arg, MRTD: hex.EncodeToString(mrtd[:])}
	out.Sections, _ = tdx.ParseMetadata(fw) // parsed by MRTD
	switch {
	case *kernel != "" && *acpi != "":
		rtmr, events, err := tdx.BootRTMRs(fw, boot)
		if err != nil {
			return err
		}
		out.RTMR0, out.RTMR1, out.RTMR2 = hex.EncodeToString(rtmr[0][:]), hex.EncodeToString(rtmr[1][:]), hex.EncodeToString(rtmr[2][:])
		for _, ev := range events {
			out.Events = append(out.Events, tdxBootEvent{RTMR: ev.RTMR, Type: fmt.Sprintf("%#x", ev.Type), Name: ev.Name, Digest: hex.EncodeToString(ev.Digest[:])})
		}
	case *kernel != "":
		r1, r2, err := tdx.KernelRTMRs(boot)
		if err != nil {
			return err
		}
		out.RTMR1, out.RTMR2 = hex.EncodeToString(r1[:]), hex.EncodeToString(r2[:])
		fmt.Fprintln(e.stderr, "note: RTMR0 depends on the VM's ACPI tables too: give --acpi-tables for it")
	}
	if *jsonOut {
		return writeJSON(e.stdout, out)
	}
	if *kernel == "" {
		fmt.Fprintln(e.stdout, out.MRTD)
		return nil
	}
	fmt.Fprintf(e.stdout, "mrtd  %s\n", out.MRTD)
	for i, r := range []string{out.RTMR0, out.RTMR1, out.RTMR2} {
		if r != "" {
			fmt.Fprintf(e.stdout, "rtmr%d %s\n", i, r)
		}
	}
	return nil
}

// tdxEntry is a TDX member's entry from its group-file description.
func tdxEntry(v *mage.TDXMemberFile) (*mage.TDXEntry, error) {
	e := &mage.TDXEntry{}
	var fw []byte
	if v.MRTD != "" {
		hex.Decode(e.MRTD[:], []byte(v.MRTD))
	} else {
		var err error
		if fw, err = readBounded(v.Firmware, maxFirmware); err != nil {
			return nil, err
		}
		if e.MRTD, err = tdx.MRTD(fw); err != nil {
			return nil, fmt.Errorf("%s: %w", v.Firmware, err)
		}
	}
	if v.RTMR != nil {
		for i, h := range v.RTMR {
			hex.Decode(e.RTMR[i][:], []byte(h))
		}
		return e, nil
	}
	if v.Kernel != "" {
		b := tdx.Boot{Cmdline: v.Cmdline}
		var err error
		if b.Memory, err = tdx.ParseMemory(v.Memory); err != nil {
			return nil, err
		}
		if err := readBootFiles(&b, v.Kernel, v.Initrd, v.ACPITables); err != nil {
			return nil, err
		}
		rtmr, _, err := tdx.BootRTMRs(fw, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.Kernel, err)
		}
		copy(e.RTMR[:], rtmr[:])
		return e, nil
	}
	raw, err := readBounded(v.EventLog, 16<<20)
	if err != nil {
		return nil, err
	}
	events, err := tdx.ParseEventLog(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.EventLog, err)
	}
	rtmr, err := tdx.ReplayRTMRs(events)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.EventLog, err)
	}
	if rtmr[3] != ([48]byte{}) {
		return nil, fmt.Errorf("%s: the reference boot extended RTMR3 already; the TD's boot must extend it with the table's event first", v.EventLog)
	}
	copy(e.RTMR[:], rtmr[:3])
	return e, nil
}
