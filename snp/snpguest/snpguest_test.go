package snpguest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/snp/snpguest"
	"github.com/magesgx/mage/snp/snpreport"
)

// simSource gives extended reports of a simulated guest, as the kernel
// gives them: the report, then the certificate table.
type simSource struct{ g *sim.SNPGuest }

func (s simSource) GetRawQuote(data [64]byte) ([]byte, error) {
	r, t, err := s.g.Report(data)
	return append(r, t...), err
}

// TestBackend: the backend splits the kernel's extended report into a
// report that verifies and its certificate table, and refuses answers of
// the wrong size and cancelled requests.
func TestBackend(t *testing.T) {
	p, err := sim.NewSNPPlatform()
	if err != nil {
		t.Fatal(err)
	}
	var _ attest.SNPBackend = (*snpguest.Backend)(nil)
	b := snpguest.NewWith(simSource{p.Launch([48]byte{1}, sim.SNPPolicy, [32]byte{})}, []byte("table"), "quiet")
	report, table, err := b.SNPReport(context.Background(), [64]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	v := &snpreport.Verifier{InsecureSimulationRoots: []snpreport.Roots{{ProductLine: p.ProductLine, ARK: p.ARK, ASK: p.ASK}}}
	r, err := v.Verify(context.Background(), snpreport.Evidence{Report: report, CertTable: table})
	if err != nil || r.ReportData != ([64]byte{2}) {
		t.Fatalf("the backend's report: %v", err)
	}
	if pl, cl := b.Table(); string(pl) != "table" || cl != "quiet" {
		t.Errorf("table %q, command line %q", pl, cl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.SNPReport(ctx, [64]byte{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled request: %v", err)
	}
	short := snpguest.NewWith(shortSource{}, nil, "")
	if _, _, err := short.SNPReport(context.Background(), [64]byte{}); !errors.Is(err, snpguest.ErrGuest) {
		t.Errorf("a short answer: %v", err)
	}
}

type shortSource struct{}

func (shortSource) GetRawQuote([64]byte) ([]byte, error) { return make([]byte, 100), nil }
