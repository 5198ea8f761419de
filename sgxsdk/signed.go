package sgxsdk

import (
	"context"
	"fmt"
	"strings"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sgx/measure"
)

// Signed is a signed SDK enclave file as the loader sees it: the ELF and
// its metadata chain (primary metadata first, then compatible copies).
type Signed struct {
	ELF      *ELF
	Metadata []*Metadata
}

// ParseSigned parses a signed enclave from its file alone.
func ParseSigned(file []byte) (*Signed, error) {
	e, err := ParseELF(file)
	if err != nil {
		return nil, err
	}
	ms, err := ParseMetadataBlock(file[e.MetadataOffset : e.MetadataOffset+e.MetadataSize])
	if err != nil {
		return nil, err
	}
	return &Signed{ELF: e, Metadata: ms}, nil
}

// Primary returns the metadata a current loader uses: the first of the
// chain whose major version it knows: 1 (SDK 1.x), 2 (SDK 2.0 to 2.x), 3
// (current SDKs), and 11 and 13 (the ELRANGE variants of 1 and 3).
func (s *Signed) Primary() (*Metadata, error) {
	for _, m := range s.Metadata {
		switch m.Version >> 32 {
		case 1, 2, 3, 11, 13:
			return m, nil
		}
	}
	return nil, metaErr("no metadata of a supported version (have %s)", s.versions())
}

func (s *Signed) versions() string {
	var v []string
	for _, m := range s.Metadata {
		v = append(v, fmt.Sprintf("%d.%d", m.Version>>32, uint32(m.Version)))
	}
	return strings.Join(v, ", ")
}

// Sigstruct returns the SIGSTRUCT of the primary metadata.
func (s *Signed) Sigstruct() *sgx.Sigstruct { return s.Metadata[0].Sigstruct }

// Measure replays the loader over the file and its metadata and returns the
// MRENCLAVE it computes, with the .sgx_mage section (as stored in the file)
// measured last. It does not look at the SIGSTRUCT's enclave hash.
func (s *Signed) Measure(ctx context.Context) (sgx.Measurement, error) {
	m, err := s.Primary()
	if err != nil {
		return sgx.Measurement{}, err
	}
	return s.MeasureWith(ctx, m)
}

// MeasureWith replays the loader with one given metadata structure of the
// chain (an older loader picks a compatible copy); all of them must give
// the same MRENCLAVE.
func (s *Signed) MeasureWith(ctx context.Context, m *Metadata) (sgx.Measurement, error) {
	return newLoader(ctx, s.ELF, m, s.ELF.MageSection()).measure()
}

// MeasurePrefix is the measurement state before the .sgx_mage pages.
func (s *Signed) MeasurePrefix(ctx context.Context) (measure.State, error) {
	m, err := s.Primary()
	if err != nil {
		return measure.State{}, err
	}
	return newLoader(ctx, s.ELF, m, s.ELF.MageSection()).prefix()
}

// MeasureSigned returns the MRENCLAVE the loader computes for a signed
// enclave file.
func MeasureSigned(file []byte) (sgx.Measurement, error) {
	s, err := ParseSigned(file)
	if err != nil {
		return sgx.Measurement{}, err
	}
	return s.Measure(context.Background())
}
