package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
)

func runSim(e *env, args []string) error {
	sub := func(name string) func(*env, []string) error {
		return func(e *env, rest []string) error { return runSimCommand(e, name, rest) }
	}
	return dispatch(e, args, "sim", `Usage: magectl sim <load|root> --platform DIR [flags]

  load SIGNED.so   load a signed enclave on the simulated platform (EINIT's
                   checks) and print its identity and derived group
  root             print the platform's simulated root CA (PEM); trust it
                   only for simulation

The platform directory is created on first use (mode 0700).
`, map[string]func(*env, []string) error{"load": sub("load"), "root": sub("root")})
}

func runSimCommand(e *env, name string, args []string) error {
	usage := "sim load --platform DIR [--json] [--debug] [--libpal PAL [--sig APP.sig]] (SIGNED.so | APP.manifest.sgx)"
	if name == "root" {
		usage = "sim root --platform DIR"
	}
	fs := newFlagSet(e, "sim "+name, usage)
	dir := fs.String("platform", "", "simulated platform `directory`")
	var debug, jsonOut *bool
	var libpal, sigFile *string
	if name == "load" {
		libpal = fs.String("libpal", "", "the `libpal.so` a Gramine enclave runs (for a .manifest.sgx)")
		sigFile = fs.String("sig", "", "a Gramine enclave's SIGSTRUCT `file` (default: beside the manifest, .sig)")
		debug = fs.Bool("debug", false, "launch with ATTRIBUTES.DEBUG (refused if the enclave was signed with DisableDebug)")
		jsonOut = fs.Bool("json", false, "print JSON")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return mapFlagErr(err)
	}
	if *dir == "" {
		return usagef("--platform is required")
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
		var enc *sim.Enclave
		var pal *gramine.Libpal
		var palRaw []byte
		if *libpal != "" {
			if palRaw, err = os.ReadFile(*libpal); err != nil {
				return err
			}
			if pal, err = gramine.ParseLibpal(palRaw); err != nil {
				return fmt.Errorf("%s: %w", *libpal, err)
			}
		}
		if isELF(raw) {
			enc, err = p.Load(e.ctx, raw, &sim.LoadOptions{Debug: *debug})
		} else {
			if pal == nil {
				return usagef("%s is not an SDK enclave: a Gramine manifest needs --libpal", pos[0])
			}
			sp := *sigFile
			if sp == "" {
				sp = sigPathOf(pos[0])
			}
			sig, rerr := os.ReadFile(sp)
			if rerr != nil {
				return rerr
			}
			enc, err = p.LoadGramine(e.ctx, raw, palRaw, sig, &sim.LoadOptions{Debug: *debug})
		}
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
		var d *mage.TableDeriver
		if g := enc.Gramine(); g != nil && g.Payload != nil {
			d, _ = mage.NewPayloadDeriver(g.Payload, mage.GramineConstants{Libpal: pal, MaxThreads: g.MaxThreads, EDMM: g.EDMM})
		} else if sec := enc.MageSection(); sec != nil {
			d, _ = mage.NewSectionDeriver(sec, pal)
		}
		if d != nil {
			if all, err := d.DeriveAll(); err == nil && slices.Contains(all, enc.MRENCLAVE) {
				out.Self = slices.Index(all, enc.MRENCLAVE)
				for _, m := range all {
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
			table := enc.MageSection()
			if g := enc.Gramine(); g != nil {
				table = g.Payload
			}
			sum := sha256.Sum256(table)
			fmt.Fprintf(e.stdout, "MAGE member %d of %d (table sha256 %s)\n", out.Self, len(out.Group), hex.EncodeToString(sum[:8]))
		}
		return nil
	}
	return usagef("unknown sim command %q", name)
}
