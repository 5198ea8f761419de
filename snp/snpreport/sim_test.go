package snpreport_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/magesgx/mage/sim"
	"github.com/magesgx/mage/snp/snpreport"
)

// TestSimulatedPlatform: a simulated SNP platform's reports verify with
// its roots named insecure, carry the launch digest, report and host data
// given, and are refused without those roots or with a changed byte.
func TestSimulatedPlatform(t *testing.T) {
	p, err := sim.NewSNPPlatform()
	if err != nil {
		t.Fatal(err)
	}
	g := p.Launch([48]byte{1, 2, 3}, sim.SNPPolicy, [32]byte{9})
	report, table, err := g.Report([64]byte{7})
	if err != nil {
		t.Fatal(err)
	}
	v := &snpreport.Verifier{InsecureSimulationRoots: []snpreport.Roots{{ProductLine: p.ProductLine, ARK: p.ARK, ASK: p.ASK}}}
	r, err := v.Verify(context.Background(), snpreport.Evidence{Report: report, CertTable: table})
	if err != nil {
		t.Fatal(err)
	}
	if r.Measurement != ([48]byte{1, 2, 3}) || r.ReportData != ([64]byte{7}) || r.HostData != ([32]byte{9}) || r.Debug || r.ProductLine != "Milan" || r.ChipID != p.ChipID {
		t.Errorf("report %+v", r)
	}
	if _, err := (&snpreport.Verifier{}).Verify(context.Background(), snpreport.Evidence{Report: report, CertTable: table}); !errors.Is(err, snpreport.ErrReport) {
		t.Errorf("a simulated report verified against AMD's roots alone: %v", err)
	}
	other, err := sim.NewSNPPlatform()
	if err != nil {
		t.Fatal(err)
	}
	w := &snpreport.Verifier{InsecureSimulationRoots: []snpreport.Roots{{ProductLine: other.ProductLine, ARK: other.ARK, ASK: other.ASK}}}
	if _, err := w.Verify(context.Background(), snpreport.Evidence{Report: report, CertTable: table}); err == nil {
		t.Error("a report verified with another simulated platform's roots")
	}
	bad := bytes.Clone(report)
	bad[0x90] ^= 1
	if _, err := v.Verify(context.Background(), snpreport.Evidence{Report: bad, CertTable: table}); err == nil {
		t.Error("a report with a changed measurement verified")
	}
	dbg := p.Launch([48]byte{1}, sim.SNPPolicy|1<<19, [32]byte{})
	report, table, _ = dbg.Report([64]byte{})
	if _, err := v.Verify(context.Background(), snpreport.Evidence{Report: report, CertTable: table}); err == nil {
		t.Error("a debug guest's report verified")
	}
}
