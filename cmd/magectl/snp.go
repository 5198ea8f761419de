package main

// magectl snp: AMD SEV-SNP confidential VMs (so far: the launch digest of
// a QEMU guest booting OVMF).

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/magesgx/mage/snp"
)

func runSNP(e *env, args []string) error {
	return dispatch(e, args, "snp", `Usage: magectl snp <measure> [flags]

  measure FIRMWARE    the launch digest of a QEMU guest booting this OVMF image

Run "magectl snp <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runSNPMeasure})
}

type snpMeasure struct {
	File          string `json:"file"`
	Measurement   string `json:"measurement"`
	VCPUs         int    `json:"vcpus"`
	VCPUSignature string `json:"vcpu_signature"`
	GuestFeatures string `json:"guest_features"`
}

func runSNPMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "snp measure", "snp measure FIRMWARE --vcpus N --vcpu-type TYPE [--guest-features 0x1] [--json]")
	vcpus := fs.Int("vcpus", 0, "number of vCPUs (required)")
	vcpuType := fs.String("vcpu-type", "", "QEMU CPU `model` (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...) (required)")
	features := fs.Uint64("guest-features", 1, "the VMSA's SEV_FEATURES")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "firmware image")
	if err != nil {
		return err
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
	ld, err := snp.LaunchDigest(fw, snp.Options{VCPUs: *vcpus, VCPUSignature: sig, GuestFeatures: *features})
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	if *jsonOut {
		return writeJSON(e.stdout, snpMeasure{File: arg, Measurement: hex.EncodeToString(ld[:]), VCPUs: *vcpus,
			VCPUSignature: fmt.Sprintf("%#x", sig), GuestFeatures: fmt.Sprintf("%#x", *features)})
	}
	fmt.Fprintln(e.stdout, hex.EncodeToString(ld[:]))
	return nil
}
