package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
)

func runSim(e *env, args []string) error {
	sub := func(name string) func(*env, []string) error {
		return func(e *env, rest []string) error { return runSimCommand(e, name, rest) }
	}
	return dispatch(e, args, "sim", `Usage: magectl sim <load|root> -platform DIR [flags]

  load SIGNED.so   load a signed enclave on the simulated platform (EINIT's
                   checks) and print its identity and derived group
  root             print the platform's simulated root CA (PEM); trust it
                   only for simulation

The platform directory is created on first use (mode 0700).
`, map[string]func(*env, []string) error{"load": sub("load"), "root": sub("root")})
}

func runSimCommand(e *env, name string, args []string) error {
	usage := "sim load -platform DIR [--json] [-debug] SIGNED.so"
	if name == "root" {
		usage = "sim root -platform DIR"
	}
	fs := newFlagSet(e.stderr, "sim "+name, usage)
	dir := fs.String("platform", "", "simulated platform `directory`")
	var debug, jsonOut *bool
	if name == "load" {
		debug = fs.Bool("debug", false, "launch with ATTRIBUTES.DEBUG (refused if the enclave was signed with DisableDebug)")
		jsonOut = fs.Bool("json", false, "print JSON")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return mapFlagErr(err)
	}
	if *dir == "" {
		return usagef("-platform is required")
	}
	p, err := sim.Open(*dir)
	if err != nil {
		return err
	}
	switch name {
	case "root":
		if len(pos) != 0 {
			return usagef("sim root takes no arguments")
		}
		_, err := e.stdout.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.RootCertificate().Raw}))
		return err
	case "load":
		if len(pos) != 1 {
			return usagef("want one signed enclave")
		}
		raw, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		enc, err := p.Load(e.ctx, raw, &sim.LoadOptions{Debug: *debug})
		if errors.Is(err, sim.ErrEINIT) || errors.Is(err, sim.ErrECREATE) {
			return failed(fmt.Errorf("%s: %w", pos[0], err)) // the enclave was refused
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err) // not a loadable signed enclave
		}
		out := struct {
			File     string       `json:"file"`
			Identity sgx.Identity `json:"identity"`
			Group    []string     `json:"group,omitempty"`
			Self     int          `json:"self"`
		}{File: pos[0], Identity: enc.Identity, Self: -1}
		if sec := enc.MageSection(); sec != nil {
			if g, err := mage.Trust(e.ctx, enc.MRENCLAVE, sec); err == nil {
				out.Self = g.Self
				for _, m := range g.Measurements {
					out.Group = append(out.Group, m.String())
				}
			}
		}
		if *jsonOut {
			return writeJSON(e.stdout, out)
		}
		fmt.Fprintf(e.stdout, "loaded %s\nMRENCLAVE %s\nMRSIGNER  %s\nATTRIBUTES %v  MISCSELECT %#x  ISVPRODID %d  ISVSVN %d\n",
			pos[0], enc.MRENCLAVE, enc.MRSIGNER, enc.Attributes, enc.MiscSelect, enc.ISVProdID, enc.ISVSVN)
		if out.Group != nil {
			sum := sha256.Sum256(enc.MageSection())
			fmt.Fprintf(e.stdout, "MAGE member %d of %d (table sha256 %s)\n", out.Self, len(out.Group), hex.EncodeToString(sum[:8]))
		}
		return nil
	}
	return usagef("unknown sim command %q", name)
}
