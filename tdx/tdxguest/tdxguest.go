// Package tdxguest is the attestation backend of a MAGE member that runs
// as a real Intel TDX trust domain: it asks the kernel for TD quotes
// through google/go-tdx-guest's client (configfs-tsm where the kernel
// offers it, else /dev/tdx_guest), and gives the table the TD was handed.
// A *Backend is an attest.TDXBackend.
//
// The TD's boot must have extended RTMR3 with mage.TableEvent of the
// table's SHA-256 before anything else ran (its initrd, measured itself);
// this package does not extend RTMRs.
package tdxguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/go-tdx-guest/client"
	"github.com/magesgx/mage/dcap"
)

// ErrGuest is wrapped by every failure to get a quote.
var ErrGuest = errors.New("tdxguest")

// maxQuote bounds a quote the kernel gives (a TD quote with its PCK chain
// is about 5 KiB; the kernel's buffer is larger, padded with zeros).
const maxQuote = 64 << 10

// QuoteSource gives a TD quote for report data (go-tdx-guest's
// configfs-tsm provider is one).
type QuoteSource interface {
	GetRawQuote(reportData [64]byte) ([]byte, error)
}

// deviceSource asks /dev/tdx_guest.
type deviceSource struct{ d *client.LinuxDevice }

func (s deviceSource) GetRawQuote(data [64]byte) ([]byte, error) {
	return client.GetRawQuote(s.d, data)
}

// Backend is a real TD's attest.TDXBackend.
type Backend struct {
	quotes  QuoteSource
	payload []byte
}

// New returns the backend of this TD: quotes from the kernel, and the
// table's bytes (which need not be trusted: a member finds its own
// measurement among those the table derives, or refuses to start).
func New(payload []byte) (*Backend, error) {
	if qp, err := client.GetQuoteProvider(); err == nil && qp.IsSupported() == nil {
		return NewWith(qp, payload), nil
	}
	d, err := client.OpenDevice()
	if err != nil {
		return nil, fmt.Errorf("%w: no TD quote interface (configfs-tsm or /dev/tdx_guest): %w", ErrGuest, err)
	}
	return NewWith(deviceSource{d}, payload), nil
}

// NewWith returns a backend over any source of TD quotes.
func NewWith(q QuoteSource, payload []byte) *Backend {
	return &Backend{quotes: q, payload: bytes.Clone(payload)}
}

// Table implements attest.TDXBackend.
func (b *Backend) Table() []byte { return b.payload }

// TDQuote implements attest.TDXBackend: the quote without the zeros the
// kernel's buffer may pad it with. ctx is checked before the request.
func (b *Backend) TDQuote(ctx context.Context, data [64]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	raw, err := b.quotes.GetRawQuote(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	if len(raw) > maxQuote {
		return nil, fmt.Errorf("%w: a quote of %d bytes", ErrGuest, len(raw))
	}
	n, err := dcap.QuoteLength(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	if bytes.Count(raw[n:], []byte{0}) != len(raw)-n {
		return nil, fmt.Errorf("%w: %d bytes other than zero padding after the quote", ErrGuest, len(raw)-n)
	}
	return raw[:n], nil
}
