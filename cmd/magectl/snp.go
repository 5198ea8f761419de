package main

// magectl snp: AMD SEV-SNP confidential VMs (so far: the launch digest of
// a QEMU guest booting OVMF, alone or with a direct boot).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/snp"
	"github.com/magesgx/mage/snp/snpreport"
)

func runSNP(e *env, args []string) error {
	return dispatch(e, args, "snp", `Usage: magectl snp <measure|verify> [flags]

  measure FIRMWARE    the launch digest of a QEMU guest booting this OVMF image,
                      alone or with a kernel, initrd and command line
  verify REPORT       verify an SEV-SNP attestation report against AMD's roots

Run "magectl snp <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runSNPMeasure, "verify": runSNPVerify})
}

type snpMeasure struct {
	File          string `json:"file"`
	Measurement   string `json:"measurement"`
	VCPUs         int    `json:"vcpus"`
	VCPUSignature string `json:"vcpu_signature"`
	GuestFeatures string `json:"guest_features"`
	// With a direct boot: the SHA-256 of each input, as the SEV hashes
	// table records them.
	KernelSHA256  string `json:"kernel_sha256,omitempty"`
	InitrdSHA256  string `json:"initrd_sha256,omitempty"`
	CmdlineSHA256 string `json:"cmdline_sha256,omitempty"`
}

func runSNPMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "snp measure", "snp measure FIRMWARE --vcpus N --vcpu-type TYPE [--guest-features 0x1] [--kernel FILE [--initrd FILE] [--append CMDLINE]] [--firmware-digest HEX] [--json]")
	vcpus := fs.Int("vcpus", 0, "number of vCPUs (required)")
	vcpuType := fs.String("vcpu-type", "", "QEMU CPU `model` (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...) (required)")
	features := fs.Uint64("guest-features", 1, "the VMSA's SEV_FEATURES")
	kernel := fs.String("kernel", "", "direct boot: the kernel `file` QEMU is given with -kernel (and kernel-hashes=on)")
	initrd := fs.String("initrd", "", "direct boot: the initrd `file` (-initrd); needs --kernel")
	cmdline := fs.String("append", "", "direct boot: the kernel command `line` (-append); needs --kernel")
	fwDigest := fs.String("firmware-digest", "", "the launch digest after the firmware's pages, in `hex` (sev-snp-measure's --snp-ovmf-hash): FIRMWARE then need only hold the image's last pages")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "firmware image")
	if err != nil {
		return err
	}
	o := snp.Options{VCPUs: *vcpus, GuestFeatures: *features}
	if *fwDigest != "" {
		d, err := hex.DecodeString(*fwDigest)
		if err != nil || len(d) != 48 {
			return usagef("--firmware-digest: want 96 hex digits (a SHA-384)")
		}
		o.FirmwareDigest = (*[48]byte)(d)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if (set["initrd"] || set["append"]) && *kernel == "" {
		return usagef("--initrd and --append describe a direct boot: they need --kernel")
	}
	if *vcpus < 1 {
		return usagef("--vcpus is required (at least 1)")
	}
	sig, ok := snp.VCPUType(*vcpuType)
	if !ok {
		return usagef("--vcpu-type %q: want one of QEMU's EPYC models (EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...)", *vcpuType)
	}
	fw, err := readBounded(arg, maxFirmware)
	if err != nil {
		return err
	}
	o.VCPUSignature = sig
	if *kernel != "" {
		if o.Boot, err = snpDirectBoot(*kernel, *initrd); err != nil {
			return err
		}
		o.Boot.Cmdline = snp.CmdlineHash(*cmdline)
	}
	ld, err := snp.LaunchDigest(fw, o)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	if *jsonOut {
		out := snpMeasure{File: arg, Measurement: hex.EncodeToString(ld[:]), VCPUs: *vcpus,
			VCPUSignature: fmt.Sprintf("%#x", sig), GuestFeatures: fmt.Sprintf("%#x", *features)}
		if b := o.Boot; b != nil {
			out.KernelSHA256, out.InitrdSHA256, out.CmdlineSHA256 = hex.EncodeToString(b.Kernel[:]), hex.EncodeToString(b.Initrd[:]), hex.EncodeToString(b.Cmdline[:])
		}
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintln(e.stdout, hex.EncodeToString(ld[:]))
	return nil
}

// sha256File hashes a file as it streams (kernels and initrds can be large).
func sha256File(name string) ([32]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("%s: %w", name, err)
	}
	return [32]byte(h.Sum(nil)), nil
}

// snpDirectBoot is a direct boot's kernel and initrd (optional: "" is
// none) as the SEV hashes table records them, by their SHA-256; the
// caller sets the command line's.
func snpDirectBoot(kernel, initrd string) (*snp.DirectBoot, error) {
	b := &snp.DirectBoot{Initrd: sha256.Sum256(nil)}
	var err error
	if b.Kernel, err = sha256File(kernel); err != nil {
		return nil, err
	}
	if initrd != "" {
		if b.Initrd, err = sha256File(initrd); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// maxFirmware bounds an OVMF image read whole (they are 2 to 4 MiB).
const maxFirmware = 64 << 20

// snpLaunch is an SNP member's launch cut at its hashes page, from its
// group-file description.
func snpLaunch(v *mage.SNPMemberFile) (*snp.Launch, error) {
	sig, ok := snp.VCPUType(v.VCPUType)
	if !ok {
		return nil, usagef("vcpu_type %q: want one of QEMU's EPYC models (EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...)", v.VCPUType)
	}
	o := snp.Options{VCPUs: v.VCPUs, VCPUSignature: sig, GuestFeatures: 1}
	if v.GuestFeatures != "" {
		f, err := strconv.ParseUint(v.GuestFeatures, 0, 64)
		if err != nil {
			return nil, usagef("guest_features %q: want a number such as 0x1", v.GuestFeatures)
		}
		o.GuestFeatures = f
	}
	if v.FirmwareDigest != "" {
		d, err := hex.DecodeString(v.FirmwareDigest)
		if err != nil || len(d) != 48 {
			return nil, usagef("firmware_digest: want 96 hex digits (a SHA-384)")
		}
		o.FirmwareDigest = (*[48]byte)(d)
	}
	fw, err := readBounded(v.Firmware, maxFirmware)
	if err != nil {
		return nil, err
	}
	if o.Boot, err = snpDirectBoot(v.Kernel, v.Initrd); err != nil {
		return nil, err
	}
	l, err := snp.Cut(fw, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.Firmware, err)
	}
	return l, nil
}

// readBounded reads a file of at most max bytes.
func readBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", name, max)
	}
	return b, nil
}

// deriveVM derives every member from the table a VM member is handed,
// after checking that its command line binds that table.
func deriveVM(tablePath, cmdlinePath string, pal *gramine.Libpal) (*deriveResult, error) {
	payload, err := readBounded(tablePath, 16<<20)
	if err != nil {
		return nil, err
	}
	cmdline, err := readBounded(cmdlinePath, mage.MaxCmdline+4096)
	if err != nil {
		return nil, err
	}
	d, err := mage.NewVMDeriver(payload, strings.TrimSpace(string(cmdline)), pal)
	if errors.Is(err, mage.ErrNeedLibpal) {
		return nil, usagef("%s: --libpal is required: the group has Gramine members (%v)", tablePath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tablePath, err)
	}
	derived, err := d.DeriveMembers()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tablePath, err)
	}
	res := &deriveResult{File: tablePath, Self: -1}
	res.setMembers(derived)
	return res, nil
}

// runSNPVerify verifies an attestation report: its VCEK (sent beside it
// as an extended report's certificate table, given, or fetched from AMD's
// KDS) chained to AMD's root for its product line, and its signature.
func runSNPVerify(e *env, args []string) error {
	fs := newFlagSet(e, "snp verify", "snp verify REPORT [--certs TABLE | --vcek FILE | --kds [--product-line LINE] [--cache DIR]] [--time T] [--launch HEX] [--insecure-allow-debug] [--json]")
	certs := fs.String("certs", "", "the extended report's certificate `table` (as the kernel gives it beside the report)")
	vcek := fs.String("vcek", "", "the chip's VCEK `file` (DER), from an offline bundle")
	useKDS := fs.Bool("kds", false, "fetch the VCEK from AMD's Key Distribution Service")
	line := fs.String("product-line", "", "with --kds: the product `line` of a version-2 report, which does not name it (Milan, Genoa, Turin)")
	cache := fs.String("cache", "", "with --kds: keep verified VCEKs in this `directory`")
	at := fs.String("time", "", "verification `time`, RFC 3339 (default: now)")
	launch := fs.String("launch", "", "expected launch digest (`hex`): the report's MEASUREMENT must be it")
	allowDebug := fs.Bool("insecure-allow-debug", false, "accept a guest whose policy lets the host debug it (read its memory)")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "report file")
	if err != nil {
		return err
	}
	if btoi(*certs != "")+btoi(*vcek != "")+btoi(*useKDS) > 1 {
		return usagef("give one of --certs, --vcek and --kds")
	}
	if !*useKDS && (*line != "" || *cache != "") {
		return usagef("--product-line and --cache apply to --kds")
	}
	v := &snpreport.Verifier{InsecureAllowDebug: *allowDebug, ProductLine: *line, Dir: *cache}
	if *at != "" {
		when, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usagef("--time: %v", err)
		}
		v.Now = func() time.Time { return when }
	}
	var want []byte
	if *launch != "" {
		if want, err = hex.DecodeString(*launch); err != nil || len(want) != 48 {
			return usagef("--launch: want 96 hex digits (a SHA-384)")
		}
	}
	report, err := readBounded(arg, snpreport.ReportSize+snpreport.MaxCertTable)
	if err != nil {
		return err
	}
	ev := snpreport.Evidence{Report: report}
	if len(report) > snpreport.ReportSize && *certs == "" {
		// A report and its certificate table in one file, as
		// go-sev-guest's raw quotes are.
		ev.Report, ev.CertTable = report[:snpreport.ReportSize], report[snpreport.ReportSize:]
	}
	switch {
	case *certs != "":
		if ev.CertTable, err = readBounded(*certs, snpreport.MaxCertTable); err != nil {
			return err
		}
	case *vcek != "":
		c, err := readBounded(*vcek, 16<<10)
		if err != nil {
			return err
		}
		v.VCEKs = [][]byte{c}
	case *useKDS:
		v.KDS = &snpreport.KDS{}
	}
	r, verr := v.Verify(e.ctx, ev)
	if verr == nil && want != nil && !bytes.Equal(r.Measurement[:], want) {
		verr = fmt.Errorf("the report's launch digest is %x, not the expected %x", r.Measurement, want)
	}
	if *jsonOut {
		out := struct {
			OK     bool           `json:"ok"`
			Report *snpReportView `json:"report,omitempty"`
			Error  string         `json:"error,omitempty"`
		}{OK: verr == nil}
		if r != nil {
			out.Report = viewSNPReport(r)
		}
		if verr != nil {
			out.Error = verr.Error()
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else if r != nil {
		fmt.Fprintf(e.stdout, "ok: signed by the %s of a %s chip, chained to AMD's root\nlaunch digest %x\nreport data   %x\nhost data     %x\npolicy %#x (debug %t), VMPL %d, reported TCB %#016x\n",
			r.Signer, r.ProductLine, r.Measurement, r.ReportData, r.HostData, r.Policy, r.Debug, r.VMPL, r.ReportedTCB)
	}
	if verr != nil {
		if errors.Is(verr, snpreport.ErrReport) || want != nil {
			return failed(verr)
		}
		return verr
	}
	return nil
}

type snpReportView struct {
	Version     uint32 `json:"version"`
	Measurement string `json:"measurement"`
	HostData    string `json:"host_data"`
	ReportData  string `json:"report_data"`
	Policy      string `json:"policy"`
	Debug       bool   `json:"debug"`
	VMPL        uint32 `json:"vmpl"`
	ChipID      string `json:"chip_id"`
	ReportedTCB string `json:"reported_tcb"`
	ProductLine string `json:"product_line"`
	Signer      string `json:"signer"`
}

func viewSNPReport(r *snpreport.Report) *snpReportView {
	return &snpReportView{Version: r.Version, Measurement: hex.EncodeToString(r.Measurement[:]), HostData: hex.EncodeToString(r.HostData[:]),
		ReportData: hex.EncodeToString(r.ReportData[:]), Policy: fmt.Sprintf("%#x", r.Policy), Debug: r.Debug, VMPL: r.VMPL,
		ChipID: hex.EncodeToString(r.ChipID[:]), ReportedTCB: fmt.Sprintf("%#016x", r.ReportedTCB), ProductLine: r.ProductLine, Signer: r.Signer}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
