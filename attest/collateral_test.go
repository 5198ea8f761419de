package attest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/dcap/dcaptest"
)

// TestMemberWithPCCS: a member configured with nothing but a PCCS URL (a
// cache in front of it) verifies a real Intel quote in full at a time in
// its collateral's window (then refuses it only for not being bound to
// this session), and refuses it outside the window.
func TestMemberWithPCCS(t *testing.T) {
	quote, col, _ := realQuote(t)
	srv := dcaptest.NewServer(col, "00A067110000")
	defer srv.Close()
	var now time.Time
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: srv.BaseURL(), InsecureHTTP: true}, Time: func() time.Time { return now }}
	defer cache.Close()
	f := newFixture(t)
	m := f.member(t, read(t, "signed/g1_v0.signed.so"), Remote, func(c *Config) {
		c.Collateral, c.Now = cache, func() time.Time { return now }
		c.AcceptTCB = []dcap.TCBStatus{dcap.ConfigurationAndSWHardeningNeeded}
	})
	now = time.Date(2025, 6, 20, 0, 0, 0, 0, time.UTC)
	if _, err := m.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, ErrBinding) {
		t.Errorf("in the window: %v, want full verification then ErrBinding", err)
	}
	now = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)
	if _, err := m.verify(context.Background(), Remote, quote, [64]byte{}); !errors.Is(err, ErrEvidence) || errors.Is(err, ErrBinding) {
		t.Errorf("outside the window: %v, want ErrEvidence", err)
	}
}
