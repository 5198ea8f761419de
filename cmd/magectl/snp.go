package main

// magectl snp: AMD SEV-SNP confidential VMs (so far: the launch digest of
// a QEMU guest booting OVMF, alone or with a direct boot).

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/magesgx/mage/snp"
)

func runSNP(e *env, args []string) error {
	return dispatch(e, args, "snp", `Usage: magectl snp <measure> [flags]

  measure FIRMWARE    the launch digest of a QEMU guest booting this OVMF image,
                      alone or with a kernel, initrd and command line

Run "magectl snp <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runSNPMeasure})
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
	fw, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	o.VCPUSignature = sig
	if *kernel != "" {
		b := &snp.DirectBoot{Cmdline: snp.CmdlineHash(*cmdline), Initrd: sha256.Sum256(nil)}
		if b.Kernel, err = sha256File(*kernel); err != nil {
			return err
		}
		if *initrd != "" {
			if b.Initrd, err = sha256File(*initrd); err != nil {
				return err
			}
		}
		o.Boot = b
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
