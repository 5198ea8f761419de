package main

import (
	"fmt"
	"os"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
)

func runGramine(e *env, args []string) error {
	return dispatch(e, args, "gramine", `Usage: magectl gramine <measure|sign|show> [flags]

  measure MANIFEST.sgx --libpal PAL      the MRENCLAVE Gramine's loader
                                         gives the manifest, measured as is
  sign MANIFEST.sgx --libpal PAL --key KEY.pem --date YYYY-MM-DD --out APP.sig
                                         sign it as gramine-sgx-sign does
  show APP.sig                           print a Gramine .sig (SIGSTRUCT)

Run "magectl gramine <command> --help" for flags.
`, map[string]func(*env, []string) error{"measure": runGramineMeasure, "sign": runGramineSign, "show": runGramineShow})
}

// gramineEnclave reads a manifest and a libpal and lays out the enclave.
func gramineEnclave(manifest, libpal string) (*gramine.Enclave, error) {
	if libpal == "" {
		return nil, usagef("--libpal is required: the libpal.so of the Gramine build that will run the enclave (its bytes are measured)")
	}
	mb, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	m, err := gramine.ParseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifest, err)
	}
	pb, err := os.ReadFile(libpal)
	if err != nil {
		return nil, err
	}
	p, err := gramine.ParseLibpal(pb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", libpal, err)
	}
	en, err := gramine.NewEnclave(m, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifest, err)
	}
	return en, nil
}

type gramineMeasure struct {
	File        string          `json:"file"`
	MRENCLAVE   sgx.Measurement `json:"mrenclave"`
	EnclaveSize uint64          `json:"enclave_size"`
	MaxThreads  int             `json:"max_threads"`
	EDMM        bool            `json:"edmm_enable"`
	LibpalSHA   string          `json:"libpal_sha256"`
}

func runGramineMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "gramine measure", "gramine measure MANIFEST.sgx --libpal PAL [--json]")
	libpal := fs.String("libpal", "", "the Gramine build's `libpal.so` (<pkglibdir>/sgx/libpal.so)")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "manifest")
	if err != nil {
		return err
	}
	en, err := gramineEnclave(arg, *libpal)
	if err != nil {
		return err
	}
	mr := en.Measure()
	if *jsonOut {
		return writeJSON(e.stdout, gramineMeasure{File: arg, MRENCLAVE: mr, EnclaveSize: en.Layout.Size, MaxThreads: en.Layout.Threads,
			EDMM: en.Layout.EDMM, LibpalSHA: fmt.Sprintf("%x", en.Libpal.SHA256)})
	}
	fmt.Fprintln(e.stdout, mr)
	return nil
}

func runGramineSign(e *env, args []string) error {
	fs := newFlagSet(e, "gramine sign", "gramine sign MANIFEST.sgx --libpal PAL --key KEY.pem --date YYYY-MM-DD --out APP.sig")
	libpal := fs.String("libpal", "", "the Gramine build's `libpal.so`")
	keyFile := fs.String("key", "", "RSA-3072, e=3 signing `key` (PEM)")
	date := fs.String("date", "", "SIGSTRUCT `date`, YYYY-MM-DD (default: $SOURCE_DATE_EPOCH, else today UTC)")
	out := fs.String("out", "", "write the 1808-byte SIGSTRUCT to `file` (\"-\": standard output)")
	force := fs.Bool("force", false, "overwrite an existing output")
	arg, err := parseOneArg(fs, args, "manifest")
	if err != nil {
		return err
	}
	if *keyFile == "" || *out == "" {
		return usagef("--key and --out are required")
	}
	if err := checkOutputs([]string{arg, *libpal, *keyFile}, []string{*out}); err != nil {
		return err
	}
	var when time.Time
	if *date != "" {
		if when, err = time.Parse("2006-01-02", *date); err != nil {
			return usagef("--date %q: want YYYY-MM-DD", *date)
		}
	} else if when, err = signingDate(e, ""); err != nil {
		return err
	}
	en, err := gramineEnclave(arg, *libpal)
	if err != nil {
		return err
	}
	key, err := readKey(*keyFile)
	if err != nil {
		return err
	}
	css, err := en.Sign(key, when)
	if err != nil {
		return err
	}
	if err := e.writeOutput(*out, css.Marshal(), 0o644, *force); err != nil {
		return err
	}
	if *out != "-" {
		fmt.Fprintf(e.stderr, "signed %s: MRENCLAVE %s\n", arg, sgx.Measurement(css.EnclaveHash))
	}
	return nil
}

type gramineShow struct {
	Identity    sgx.Identity `json:"identity"` // as the SIGSTRUCT states it (unverified unless signature_valid)
	SignatureOK bool         `json:"signature_valid"`
	Date        string       `json:"date"`
	// SigstructAttributes are the ATTRIBUTES field as signed; the
	// identity's attributes add INIT, which every initialized enclave has.
	SigstructAttributes sgx.Attributes `json:"sigstruct_attributes"`
	AttributeMask       sgx.Attributes `json:"attribute_mask"`
	MiscMask            uint32         `json:"misc_mask"`
	Modulus             string         `json:"modulus"`
}

func runGramineShow(e *env, args []string) error {
	fs := newFlagSet(e, "gramine show", "gramine show APP.sig [--json]")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "SIGSTRUCT file")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return err
	}
	css, err := sgx.ParseSigstruct(b)
	if err != nil {
		return fmt.Errorf("%s: %w", arg, err)
	}
	verr := css.Verify()
	v := gramineShow{Identity: css.SignedIdentity(), SignatureOK: verr == nil, Date: fmt.Sprintf("%04x-%02x-%02x", css.Date>>16, css.Date>>8&0xff, css.Date&0xff),
		SigstructAttributes: css.Attributes, AttributeMask: css.AttributeMask, MiscMask: css.MiscMask, Modulus: fmt.Sprintf("%x", css.Modulus[:8]) + "..."}
	if *jsonOut {
		if err := writeJSON(e.stdout, v); err != nil {
			return err
		}
	} else {
		w := e.stdout
		fmt.Fprintf(w, "mr_enclave:  %s\nmr_signer:   %s\nisv_prod_id: %d\nisv_svn:     %d\n", v.Identity.MRENCLAVE, v.Identity.MRSIGNER, v.Identity.ISVProdID, v.Identity.ISVSVN)
		fmt.Fprintf(w, "attributes:  %s as initialized (SIGSTRUCT %s, INIT added; mask flags=%#x xfrm=%#x)\nmisc_select: %#x (mask %#x)\ndate:        %s\n",
			v.Identity.Attributes, css.Attributes, v.AttributeMask.Flags, v.AttributeMask.Xfrm, css.MiscSelect, v.MiscMask, v.Date)
		fmt.Fprintf(w, "debug:       %t\nsignature:   %s\n", css.Attributes.Debug(), map[bool]string{true: "valid", false: "INVALID"}[verr == nil])
	}
	if verr != nil {
		return failed(fmt.Errorf("%s: %w", arg, verr))
	}
	return nil
}
