package tdxguest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/tdx/tdxguest"
)

// padded gives a simulated TD's quotes in a zero-padded buffer, as the
// kernel does; extra, if set, is appended instead of zeros.
type padded struct {
	g     *sim.TDGuest
	extra []byte
}

func (p padded) GetRawQuote(data [64]byte) ([]byte, error) {
	q, err := p.g.Quote(data)
	if p.extra != nil {
		return append(q, p.extra...), err
	}
	return append(q, make([]byte, 1000)...), err
}

// TestBackend: the backend drops the kernel's zero padding, gives a
// quote that verifies, and refuses other trailing bytes and cancelled
// requests.
func TestBackend(t *testing.T) {
	p, err := sim.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var _ attest.TDXBackend = (*tdxguest.Backend)(nil)
	g := p.LaunchTD([48]byte{1}, [4][48]byte{}, 0)
	b := tdxguest.NewWith(padded{g: g}, []byte("table"))
	raw, err := b.TDQuote(context.Background(), [64]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	q, err := dcap.ParseTDQuote(raw)
	if err != nil || q.TD.ReportData != ([64]byte{2}) {
		t.Fatalf("the backend's quote: %v", err)
	}
	if _, _, err := (&dcap.Verifier{Root: p.RootCertificate()}).VerifySignatures(q, time.Now()); err != nil {
		t.Error(err)
	}
	if !bytes.Equal(b.Table(), []byte("table")) {
		t.Error("table")
	}
	bad := tdxguest.NewWith(padded{g: g, extra: []byte{0, 1}}, nil)
	if _, err := bad.TDQuote(context.Background(), [64]byte{}); !errors.Is(err, tdxguest.ErrGuest) {
		t.Errorf("trailing bytes: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.TDQuote(ctx, [64]byte{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled request: %v", err)
	}
}
