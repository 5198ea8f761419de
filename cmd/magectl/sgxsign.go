package main

// The sgx_sign-compatible commands: sign, gendata, catsig, dump, genmage,
// signmage; plus measure and keygen. Flags follow the SDK's sgx_sign so an
// SDK Makefile can use magectl as SGX_ENCLAVE_SIGNER unchanged.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgxsdk"
)

// signFlags are sgx_sign's options; each command says which it needs.
type signFlags struct {
	enclave, config, key, out, sig, unsigned, dumpfile, cssfile, magein, mageout, date string
	ignoreRel, ignoreInit                                                              bool
}

type flagUse int

const (
	invalid flagUse = iota
	optional
	required
)

// signCommand describes one sgx_sign mode: which options it takes.
type signCommand struct {
	name, usage string
	uses        map[string]flagUse
}

func (c signCommand) parse(e *env, args []string) (*signFlags, error) {
	f := &signFlags{}
	fs := newFlagSet(e, c.name, c.usage)
	vars := map[string]*string{
		"enclave": &f.enclave, "config": &f.config, "key": &f.key, "out": &f.out, "sig": &f.sig,
		"unsigned": &f.unsigned, "dumpfile": &f.dumpfile, "cssfile": &f.cssfile,
		"magein": &f.magein, "mageout": &f.mageout,
	}
	help := map[string]string{
		"enclave":  "the enclave `file`",
		"config":   "Enclave.config.xml `file` (default: the signer's defaults)",
		"key":      "signing key `file` (PEM)",
		"out":      "output `file`",
		"sig":      "external signature `file` (384 bytes, big-endian)",
		"unsigned": "signing material `file` written by gendata",
		"dumpfile": "write the metadata dump to `file`",
		"cssfile":  "write the 1808-byte SIGSTRUCT to `file`",
		"magein":   "MAGE entries `file` written by genmage",
		"mageout":  "append this enclave's MAGE entry to `file`",
	}
	for name, use := range c.uses {
		if use != invalid {
			fs.StringVar(vars[name], name, "", help[name])
		}
	}
	if c.name != "dump" && c.name != "measure" {
		fs.BoolVar(&f.ignoreRel, "ignore-rel-error", false, "sign even with text relocations")
		fs.BoolVar(&f.ignoreInit, "ignore-init-sec-error", false, "sign even with a .init section")
	}
	if c.uses["key"] != invalid && c.name != "catsig" || c.name == "gendata" {
		fs.StringVar(&f.date, "date", "", "SIGSTRUCT date `YYYYMMDD` (default: $SOURCE_DATE_EPOCH, else today UTC)")
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	for name, use := range c.uses {
		if use == required && *vars[name] == "" {
			return nil, usagef("-%s is required for %s", name, c.name)
		}
	}
	if err := checkOutputs([]string{f.enclave, f.config, f.key, f.sig, f.unsigned, f.magein},
		[]string{f.out, f.dumpfile, f.cssfile, f.mageout}); err != nil {
		return nil, err
	}
	return f, nil
}

// signCommands describes the sgx_sign modes; built when a mode runs, not at
// start-up.
func signCommands() map[string]signCommand {
	return map[string]signCommand{
		"sign": {"sign", "sign -enclave FILE [-config FILE] -key KEY.pem -out FILE [-dumpfile FILE] [-cssfile FILE] [-date YYYYMMDD]",
			map[string]flagUse{"enclave": required, "config": optional, "key": required, "out": required, "dumpfile": optional, "cssfile": optional}},
		"gendata": {"gendata", "gendata -enclave FILE [-config FILE] -out SIGNING_MATERIAL [-date YYYYMMDD]",
			map[string]flagUse{"enclave": required, "config": optional, "out": required}},
		"catsig": {"catsig", "catsig -enclave FILE [-config FILE] -key PUBLIC.pem -sig SIGNATURE -unsigned SIGNING_MATERIAL -out FILE [-dumpfile FILE] [-cssfile FILE]",
			map[string]flagUse{"enclave": required, "config": optional, "key": required, "out": required, "sig": required, "unsigned": required, "dumpfile": optional, "cssfile": optional}},
		"dump": {"dump", "dump -enclave SIGNED -dumpfile FILE [-cssfile FILE]",
			map[string]flagUse{"enclave": required, "dumpfile": required, "cssfile": optional}},
		"genmage": {"genmage", "genmage -enclave FILE [-config FILE] -key KEY.pem -out FILE -mageout ENTRIES",
			map[string]flagUse{"enclave": required, "config": optional, "key": required, "out": required, "dumpfile": optional, "cssfile": optional, "mageout": required}},
		"signmage": {"signmage", "signmage -enclave FILE [-config FILE] -key KEY.pem -out FILE -magein ENTRIES [-dumpfile FILE] [-cssfile FILE] [-date YYYYMMDD]",
			map[string]flagUse{"enclave": required, "config": optional, "key": required, "out": required, "dumpfile": optional, "cssfile": optional, "magein": required}},
	}
}

func runSignMode(mode string) func(*env, []string) error {
	return func(e *env, args []string) error {
		c := signCommands()[mode]
		f, err := c.parse(e, args)
		if err != nil {
			return err
		}
		switch mode {
		case "dump":
			return doDump(e, f)
		case "catsig":
			return doCatsig(e, f)
		}
		// Parsing the key (its CRT precomputation costs a tenth of a
		// signature) runs on the other core while the enclave is parsed
		// and measured.
		type loadedKey struct {
			key *rsa.PrivateKey
			err error
		}
		var keyc chan loadedKey
		if mode == "sign" || mode == "signmage" {
			keyc = make(chan loadedKey, 1)
			go func() {
				k, err := readKey(f.key)
				keyc <- loadedKey{k, err}
			}()
		}
		im, err := prepareImage(f)
		if err != nil {
			return err
		}
		switch mode {
		case "genmage":
			if _, err := readKey(f.key); err != nil {
				return err
			}
			return doGenmage(e, im, f)
		case "signmage":
			if err := applyMageIn(im, f.magein); err != nil {
				return err
			}
		}
		date, err := signingDate(e, f.date)
		if err != nil {
			return err
		}
		mr, err := im.MeasureContext(e.ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", f.enclave, err)
		}
		css := im.Sigstruct(mr, sgx.DateFromTime(date))
		if mode == "gendata" {
			return e.writeOutput(f.out, css.SigningMaterial(), 0o644, true)
		}
		lk := <-keyc
		if lk.err != nil {
			return lk.err
		}
		if err := css.Sign(lk.key); err != nil {
			return err
		}
		return writeSigned(e, im, css, f)
	}
}

func prepareImage(f *signFlags) (*sgxsdk.Image, error) {
	raw, err := os.ReadFile(f.enclave)
	if err != nil {
		return nil, err
	}
	return prepareBytes(raw, f)
}

// prepareBytes is prepareImage for an enclave already read.
func prepareBytes(raw []byte, f *signFlags) (*sgxsdk.Image, error) {
	var cfg *sgxsdk.Config
	if f.config != "" {
		x, err := os.ReadFile(f.config)
		if err != nil {
			return nil, err
		}
		if cfg, err = sgxsdk.ParseConfig(x); err != nil {
			return nil, fmt.Errorf("%s: %w", f.config, err)
		}
	}
	im, err := sgxsdk.Prepare(raw, cfg, &sgxsdk.Options{IgnoreRelError: f.ignoreRel, IgnoreInitSecError: f.ignoreInit})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.enclave, err)
	}
	return im, nil
}

// writeSigned writes the signed enclave, then the optional SIGSTRUCT and
// dump files, each atomically.
func writeSigned(e *env, im *sgxsdk.Image, css *sgx.Sigstruct, f *signFlags) error {
	out, err := im.SignedFile(css)
	if err != nil {
		return err
	}
	if err := e.writeOutput(f.out, out, 0o755, true); err != nil {
		return err
	}
	if f.cssfile != "" {
		if err := e.writeOutput(f.cssfile, css.Marshal(), 0o644, true); err != nil {
			return err
		}
	}
	if f.dumpfile != "" {
		s, err := sgxsdk.ParseSigned(out)
		if err != nil {
			return err
		}
		var b strings.Builder
		if err := s.Dump(&b); err != nil {
			return err
		}
		return e.writeOutput(f.dumpfile, []byte(b.String()), 0o644, true)
	}
	return nil
}

func doCatsig(e *env, f *signFlags) error {
	im, err := prepareImage(f)
	if err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(f.key)
	if err != nil {
		return err
	}
	pub, err := sgx.LoadPublicKey(pemBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", f.key, err)
	}
	material, err := os.ReadFile(f.unsigned)
	if err != nil {
		return err
	}
	if len(material) != 256 {
		return fmt.Errorf("%s: signing material of %d bytes, want 256 (the output of gendata)", f.unsigned, len(material))
	}
	sig, err := os.ReadFile(f.sig)
	if err != nil {
		return err
	}
	if len(sig) != 384 {
		return fmt.Errorf("%s: signature of %d bytes, want 384", f.sig, len(sig))
	}
	mr, err := im.Measure()
	if err != nil {
		return fmt.Errorf("%s: %w", f.enclave, err)
	}
	// The date comes from the signing material; everything else must match
	// what the enclave and config give now.
	date := uint32(material[20]) | uint32(material[21])<<8 | uint32(material[22])<<16 | uint32(material[23])<<24
	css := im.Sigstruct(mr, date)
	if string(css.SigningMaterial()) != string(material) {
		return failed(fmt.Errorf("%s: signing material does not match the enclave and config (was it made from another enclave or config?)", f.unsigned))
	}
	if err := css.SetSignature(pub, sig); err != nil {
		return failed(fmt.Errorf("%s: %w", f.sig, err))
	}
	return writeSigned(e, im, css, f)
}

func doDump(e *env, f *signFlags) error {
	raw, err := os.ReadFile(f.enclave)
	if err != nil {
		return err
	}
	s, err := sgxsdk.ParseSigned(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", f.enclave, err)
	}
	var b strings.Builder
	if err := s.Dump(&b); err != nil {
		return err
	}
	if err := e.writeOutput(f.dumpfile, []byte(b.String()), 0o644, true); err != nil {
		return err
	}
	if f.cssfile != "" {
		return e.writeOutput(f.cssfile, s.Sigstruct().Marshal(), 0o644, true)
	}
	return nil
}

func doGenmage(e *env, im *sgxsdk.Image, f *signFlags) error {
	ctx := e.ctx
	rva, _, ok := im.MageSection()
	if !ok {
		return fmt.Errorf("%s: %w", f.enclave, mage.ErrNoSection)
	}
	st, err := im.MeasurePrefixContext(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", f.enclave, err)
	}
	entry, _ := mage.Entry{State: st, Offset: rva}.MarshalBinary()
	old, err := os.ReadFile(f.mageout)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, err := mage.ParseEntries(old); err != nil {
		return fmt.Errorf("%s: %w", f.mageout, err)
	}
	return e.writeOutput(f.mageout, append(old, entry...), 0o644, true)
}

func applyMageIn(im *sgxsdk.Image, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	entries, err := mage.ParseEntries(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(entries) == 0 {
		return fmt.Errorf("%s: no entries", path)
	}
	_, size, ok := im.MageSection()
	if !ok {
		return mage.ErrNoSection
	}
	section, err := (&mage.Table{Entries: entries}).Marshal(int(size))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return im.SetMageSection(section)
}

// ---- measure ----

type measureResult struct {
	File      string           `json:"file"`
	Signed    bool             `json:"signed"`
	MRENCLAVE sgx.Measurement  `json:"mrenclave"`
	Sigstruct *sgx.Measurement `json:"sigstruct_mrenclave,omitempty"`
	Match     *bool            `json:"match,omitempty"`           // the SIGSTRUCT's ENCLAVEHASH is the replayed MRENCLAVE (whatever its signature)
	SigValid  *bool            `json:"signature_valid,omitempty"` // the SIGSTRUCT's RSA signature (and q1/q2) verify
	Identity  *sgx.Identity    `json:"identity,omitempty"`        // only when the SIGSTRUCT verified and matches

	signer     sgx.Measurement
	MagePrefix *mageInfo `json:"mage,omitempty"`
}

type mageInfo struct {
	Offset string `json:"offset"`
	Size   uint64 `json:"size"`
	Entry  string `json:"entry"`
}

func runMeasure(e *env, args []string) error {
	fs := newFlagSet(e, "measure", "measure --enclave FILE [--config FILE] [--json]")
	enclave := fs.String("enclave", "", "the enclave `file`, unsigned or signed")
	config := fs.String("config", "", "Enclave.config.xml `file` for an unsigned enclave (default: the signer's defaults)")
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *enclave == "" {
		if fs.NArg() == 1 {
			*enclave = fs.Arg(0)
		} else {
			return usagef("--enclave is required")
		}
	}
	raw, err := os.ReadFile(*enclave)
	if err != nil {
		return err
	}
	res := &measureResult{File: *enclave}
	var mismatch error
	if s, err := sgxsdk.ParseSigned(raw); err == nil {
		if *config != "" {
			return usagef("--config applies to unsigned enclaves; %s is signed and carries its metadata", *enclave)
		}
		mr, err := s.Measure(e.ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", *enclave, err)
		}
		css := s.Sigstruct()
		hash := sgx.Measurement(css.EnclaveHash)
		sigErr := css.Verify()
		valid := sigErr == nil
		match := hash == mr
		res.Signed, res.MRENCLAVE, res.Sigstruct, res.Match, res.SigValid, res.signer = true, mr, &hash, &match, &valid, css.MRSigner()
		if valid && match {
			id := css.SignedIdentity()
			res.Identity = &id
		}
		switch {
		case !valid:
			mismatch = failed(fmt.Errorf("%s: SIGSTRUCT: %w", *enclave, sigErr))
		case !match:
			mismatch = failed(fmt.Errorf("%s: the file measures %s but its SIGSTRUCT says %s", *enclave, mr, hash))
		}
	} else if errors.Is(err, sgxsdk.ErrMetadata) && !strings.Contains(err.Error(), "not signed") {
		return fmt.Errorf("%s: %w", *enclave, err)
	} else {
		im, err := prepareBytes(raw, &signFlags{enclave: *enclave, config: *config})
		if err != nil {
			return err
		}
		mr, err := im.MeasureContext(e.ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", *enclave, err)
		}
		res.MRENCLAVE = mr
		if rva, size, ok := im.MageSection(); ok {
			st, err := im.MeasurePrefixContext(e.ctx)
			if err != nil {
				return err
			}
			entry, _ := mage.Entry{State: st, Offset: rva}.MarshalBinary()
			res.MagePrefix = &mageInfo{Offset: fmt.Sprintf("%#x", rva), Size: size, Entry: fmt.Sprintf("%x", entry)}
		}
	}
	if *jsonOut {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
		return mismatch
	}
	fmt.Fprintf(e.stdout, "mrenclave %s\n", res.MRENCLAVE)
	if res.Signed {
		status := map[bool]string{true: "match", false: "MISMATCH"}[*res.Match]
		if !*res.SigValid {
			status += ", BAD SIGNATURE"
		}
		fmt.Fprintf(e.stdout, "sigstruct %s (%s)\n", *res.Sigstruct, status)
		fmt.Fprintf(e.stdout, "mrsigner  %s\n", res.signer)
	}
	if res.MagePrefix != nil {
		fmt.Fprintf(e.stdout, "mage      entry %s (section %s, %d bytes)\n", res.MagePrefix.Entry, res.MagePrefix.Offset, res.MagePrefix.Size)
	}
	return mismatch
}

// ---- keygen ----

func runKeygen(e *env, args []string) error {
	fs := newFlagSet(e, "keygen", "keygen [--update-key] --out KEY.pem [--pubout PUBLIC.pem] [--force]")
	out := fs.String("out", "", "write the private key (PEM, mode 0600) to `file`")
	pubout := fs.String("pubout", "", "also write the public key (PEM) to `file`")
	force := fs.Bool("force", false, "replace existing regular files (a private key is never written through a link or into a FIFO or device)")
	update := fs.Bool("update-key", false, "make an Ed25519 group update key (group sign --update-key) instead of an enclave signing key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if err := checkOutputs(nil, []string{*out, *pubout}); err != nil {
		return err
	}
	// A private key goes only to a new regular file of mode 0600 (or, with
	// -force, in place of a regular file), never through a link or into a
	// FIFO or device; "-" is standard output, when asked.
	writeKey := func(name string, data []byte) error {
		if name == "-" {
			return e.writeOutput(name, data, 0o600, *force)
		}
		return atomicfile.WritePrivate(name, data, *force)
	}
	writePub := func(name string, data []byte) error { return e.writeOutput(name, data, 0o644, *force) }
	if *update {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		priv, pub, err := marshalUpdateKey(key)
		if err != nil {
			return err
		}
		if err := writeKey(*out, priv); err != nil {
			return err
		}
		if *pubout != "" {
			if err := writePub(*pubout, pub); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stderr, "wrote %s (update key %x)\n", *out, []byte(key.Public().(ed25519.PublicKey)))
		return nil
	}
	key, err := sgx.GenerateSigningKey()
	if err != nil {
		return err
	}
	if err := writeKey(*out, sgx.MarshalSigningKey(key)); err != nil {
		return err
	}
	if *pubout != "" {
		if err := writePub(*pubout, sgx.MarshalPublicKey(&key.PublicKey)); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "wrote %s (MRSIGNER %s)\n", *out, sgx.MRSignerOf(&key.PublicKey))
	return nil
}
