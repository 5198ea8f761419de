package sgxsdk

import (
	"context"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// Options relax the signer's checks, like sgx_sign's -ignore-* flags.
type Options struct {
	IgnoreRelError     bool // accept text relocations (-ignore-rel-error)
	IgnoreInitSecError bool // accept a .init section (-ignore-init-sec-error)
}

// Errors of preparing an enclave for signing.
var (
	ErrAlreadySigned = errors.New("sgxsdk: enclave is already signed")
	ErrTextRel       = errors.New("sgxsdk: enclave has text relocations (use -ignore-rel-error to sign anyway)")
	ErrInitSection   = errors.New("sgxsdk: enclave has a .init section, which the trusted runtime does not run (use -ignore-init-sec-error to sign anyway)")
)

// Image is an unsigned enclave prepared for signing: its parsed ELF, the
// metadata the signer builds for it, and the content of its .sgx_mage
// section. Preparing does not copy the file.
type Image struct {
	elf  *ELF
	cfg  *Config
	bd   *built
	mage []byte // content of .sgx_mage to measure and write; nil without one
}

// Prepare parses an unsigned enclave and builds its metadata from cfg (nil
// means the signer's defaults), as sgx_sign does before measuring.
func Prepare(elfFile []byte, cfg *Config, opts *Options) (*Image, error) {
	if opts == nil {
		opts = &Options{}
	}
	e, err := ParseELF(elfFile)
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint64(elfFile[e.MetadataOffset:]) == MetadataMagic {
		return nil, ErrAlreadySigned
	}
	if e.HasInit && !opts.IgnoreInitSecError {
		return nil, ErrInitSection
	}
	if cfg == nil {
		cfg = DefaultConfig()
	}
	bd, err := buildMetadata(e, cfg)
	if err != nil {
		return nil, err
	}
	var nText, firstText uint64
	if !opts.IgnoreRelError {
		e.textRelocations(func(at uint64) {
			if nText++; nText == 1 {
				firstText = at
			}
		})
	}
	if nText > 0 {
		return nil, fmt.Errorf("%w: %d relocations target executable sections, the first at %#x", ErrTextRel, nText, firstText)
	}
	im := &Image{elf: e, cfg: cfg, bd: bd}
	if e.Mage != nil {
		im.mage = e.MageSection()
	}
	return im, nil
}

// ELF returns the parsed enclave.
func (im *Image) ELF() *ELF { return im.elf }

// Config returns the configuration the metadata was built from.
func (im *Image) Config() *Config { return im.cfg }

// Metadata returns the primary metadata (its SIGSTRUCT is unsigned until
// SignedFile fills it in a copy).
func (im *Image) Metadata() *Metadata { return im.bd.meta }

// MageSection reports the RVA and size of the enclave's .sgx_mage section.
func (im *Image) MageSection() (rva, size uint64, ok bool) {
	if im.elf.Mage == nil {
		return 0, 0, false
	}
	return im.elf.Mage.Addr, im.elf.Mage.Size, true
}

// SetMageSection sets the content of the .sgx_mage section: what the final
// measurement covers and what SignedFile writes (signmage). content must be
// exactly the section's size.
func (im *Image) SetMageSection(content []byte) error {
	if im.elf.Mage == nil {
		return fmt.Errorf("%w: enclave has no %s section", ErrELF, MageSectionName)
	}
	if uint64(len(content)) != im.elf.Mage.Size {
		return fmt.Errorf("%w: %s content of %d bytes, the section has %d", ErrELF, MageSectionName, len(content), im.elf.Mage.Size)
	}
	im.mage = content
	return nil
}

// MeasurePrefix returns the measurement state after everything except the
// .sgx_mage pages: the state genmage records in the enclave's table entry.
// For an enclave without the section it is the state before finalisation.
func (im *Image) MeasurePrefix() (measure.State, error) {
	return im.MeasurePrefixContext(context.Background())
}

// MeasurePrefixContext is MeasurePrefix with cancellation.
func (im *Image) MeasurePrefixContext(ctx context.Context) (measure.State, error) {
	return newLoader(ctx, im.elf, im.bd.meta, im.mage).prefix()
}

// Measure returns the MRENCLAVE of the enclave as the loader builds it,
// with the .sgx_mage pages (if any) measured last.
func (im *Image) Measure() (sgx.Measurement, error) {
	return im.MeasureContext(context.Background())
}

// MeasureContext is Measure with cancellation.
func (im *Image) MeasureContext(ctx context.Context) (sgx.Measurement, error) {
	return newLoader(ctx, im.elf, im.bd.meta, im.mage).measure()
}

// Sigstruct returns the unsigned SIGSTRUCT for the given MRENCLAVE and date:
// header and body from the config, no key or signature.
func (im *Image) Sigstruct(mrenclave sgx.Measurement, date uint32) *sgx.Sigstruct {
	s := cssFromConfig(im.cfg)
	s.Date = date
	s.EnclaveHash = mrenclave
	return s
}

// SignedFile returns the signed enclave file: a copy of the input with the
// metadata block (the primary metadata holding css, then the compatible
// copies) written into the .note.sgxmeta descriptor and, if set, the
// .sgx_mage content written into its section.
func (im *Image) SignedFile(css *sgx.Sigstruct) ([]byte, error) {
	if css == nil {
		return nil, errors.New("sgxsdk: no SIGSTRUCT")
	}
	block := slices.Clone(im.bd.block)
	prim := *im.bd.meta
	prim.Sigstruct = css
	prim.raw = block[:len(im.bd.meta.raw)]
	prim.writeHeader()
	if err := appendCompatible(block, len(prim.raw), im.cfg.TCSNum); err != nil {
		return nil, err
	}
	out := slices.Clone(im.elf.data)
	copy(out[im.elf.MetadataOffset:], block)
	if im.elf.Mage != nil {
		copy(out[im.elf.Mage.Offset:], im.mage)
	}
	return out, nil
}

// MetadataBlock returns the metadata block SignedFile would write for css.
func (im *Image) MetadataBlock(css *sgx.Sigstruct) ([]byte, error) {
	f, err := im.SignedFile(css)
	if err != nil {
		return nil, err
	}
	return f[im.elf.MetadataOffset : im.elf.MetadataOffset+MetadataBlockSize], nil
}

// Sign measures and signs an enclave in one step, as "sgx_sign sign" does.
// It returns the signed file and its SIGSTRUCT.
func Sign(elfFile []byte, cfg *Config, key *rsa.PrivateKey, date uint32, opts *Options) ([]byte, *sgx.Sigstruct, error) {
	im, err := Prepare(elfFile, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	mr, err := im.Measure()
	if err != nil {
		return nil, nil, err
	}
	css := im.Sigstruct(mr, date)
	if err := css.Sign(key); err != nil {
		return nil, nil, err
	}
	out, err := im.SignedFile(css)
	if err != nil {
		return nil, nil, err
	}
	return out, css, nil
}
