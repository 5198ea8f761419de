package ovmf_test

import (
	"encoding/hex"
	"errors"
	"testing"

	"github.com/magesgx/mage/internal/ovmf"
	"github.com/magesgx/mage/internal/ovmf/ovmftest"
)

// TestGUID: the UEFI byte order of a GUID (first three fields
// little-endian).
func TestGUID(t *testing.T) {
	g := ovmf.GUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	if got := hex.EncodeToString(g[:]); got != "de82b596b21ff745baeaa366c55a082d" {
		t.Errorf("GUID bytes %s", got)
	}
}

// TestBlock: Debian's OVMF has the TDX metadata, SEV metadata and SEV-ES
// reset entries; an unknown GUID and a truncated image are refused.
func TestBlock(t *testing.T) {
	fw := ovmftest.DebianOVMF(t)
	for _, g := range []string{"e47a6535-984a-4798-865e-4685a7bf8ec2", "dc886566-984a-4798-a75e-5585a7bf67cc", "00f771de-1a7e-4fcb-890e-68c77e2fb44e"} {
		if b, err := ovmf.Block(fw, g); err != nil || len(b) < 4 {
			t.Errorf("%s: %d bytes, %v", g, len(b), err)
		}
	}
	if _, err := ovmf.Block(fw, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, ovmf.ErrImage) {
		t.Errorf("an unknown GUID: %v", err)
	}
	if _, err := ovmf.Block(fw[:len(fw)-1], "dc886566-984a-4798-a75e-5585a7bf67cc"); !errors.Is(err, ovmf.ErrImage) {
		t.Errorf("a truncated image: %v", err)
	}
}
