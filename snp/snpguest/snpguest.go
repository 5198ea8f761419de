// Package snpguest is the attestation backend of a MAGE member that runs
// as a real AMD SEV-SNP guest: it asks the kernel for extended reports
// through google/go-sev-guest's client (configfs-tsm where the kernel
// offers it, else /dev/sev-guest), and gives the table the VM was handed
// with the command line it booted with. A *Backend is an attest.SNPBackend.
package snpguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-sev-guest/client"
	"github.com/magesgx/mage/snp/snpreport"
)

// ErrGuest is wrapped by every failure to get a report.
var ErrGuest = errors.New("snpguest")

// QuoteSource gives an extended report: the report and the certificate
// table after it (go-sev-guest's client.QuoteProvider is one).
type QuoteSource interface {
	GetRawQuote(reportData [64]byte) ([]byte, error)
}

// Backend is a real SEV-SNP guest's attest.SNPBackend.
type Backend struct {
	quotes  QuoteSource
	payload []byte
	cmdline string
}

// maxCmdline bounds what is read of /proc/cmdline.
const maxCmdline = 64 << 10

// New returns the backend of this guest: reports from the kernel, the
// command line from /proc/cmdline, and the table's bytes (which need not
// be trusted: a member checks them against the command line).
func New(payload []byte) (*Backend, error) {
	qp, err := client.GetQuoteProvider()
	if err != nil {
		return nil, fmt.Errorf("%w: no SEV-SNP report interface (configfs-tsm or /dev/sev-guest): %w", ErrGuest, err)
	}
	f, err := os.Open("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline))
	if err != nil {
		return nil, fmt.Errorf("%w: /proc/cmdline: %w", ErrGuest, err)
	}
	return NewWith(qp, payload, strings.TrimSpace(string(b))), nil
}

// NewWith returns a backend over any source of extended reports, for a
// guest whose kernel command line is cmdline.
func NewWith(q QuoteSource, payload []byte, cmdline string) *Backend {
	return &Backend{quotes: q, payload: bytes.Clone(payload), cmdline: cmdline}
}

// Table implements attest.SNPBackend.
func (b *Backend) Table() ([]byte, string) { return b.payload, b.cmdline }

// SNPReport implements attest.SNPBackend. The kernel's interfaces take no
// context: ctx is checked before the request.
func (b *Backend) SNPReport(ctx context.Context, data [64]byte) (report, certTable []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	raw, err := b.quotes.GetRawQuote(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrGuest, err)
	}
	if len(raw) < snpreport.ReportSize || len(raw) > snpreport.ReportSize+snpreport.MaxCertTable {
		return nil, nil, fmt.Errorf("%w: an extended report of %d bytes", ErrGuest, len(raw))
	}
	return raw[:snpreport.ReportSize], raw[snpreport.ReportSize:], nil
}
