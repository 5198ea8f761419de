package sim

import (
	"fmt"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/tdx"
)

// TDGuest is an Intel TDX trust domain on the simulated platform: its
// MRTD and RTMRs as the TDX module would hold them after the host built it
// and its firmware and kernel measured the boot. Its quotes are signed by
// the platform's quoting enclave under the simulated PCK chain (version 4,
// TEE type TDX), trusted only where that root is configured.
type TDGuest struct {
	p    *Platform
	body dcap.TDReportBody
}

// SimTDXModule is the simulated TDX module's measurement (MRSEAM).
var SimTDXModule = [48]byte{'s', 'i', 'm', ' ', 'T', 'D', 'X', ' ', 'm', 'o', 'd', 'u', 'l', 'e'}

// LaunchTD starts a simulated TD with the given measurements and
// TDATTRIBUTES (dcap.TDAttrDebug for a debuggable TD).
func (p *Platform) LaunchTD(mrtd [48]byte, rtmr [4][48]byte, attributes uint64) *TDGuest {
	b := dcap.TDReportBody{MRSEAM: SimTDXModule, TDAttributes: attributes, XFAM: 0xe7, MRTD: mrtd, RTMR: rtmr}
	copy(b.TEETCBSVN[:], []byte{3, 0, 5})
	return &TDGuest{p: p, body: b}
}

// ExtendRTMR extends RTMR i with a digest, as TDG.MR.RTMR.EXTEND does:
// RTMR = SHA-384(RTMR || digest). Only RTMR 2 and 3 are extendable by the
// TD.
func (g *TDGuest) ExtendRTMR(i int, digest [48]byte) error {
	if i != 2 && i != 3 {
		return fmt.Errorf("sim: a TD extends RTMR 2 or 3, not %d", i)
	}
	g.body.RTMR[i] = tdx.Extend(g.body.RTMR[i], digest)
	return nil
}

// Body returns the TD's report body with zero report data.
func (g *TDGuest) Body() dcap.TDReportBody { return g.body }

// Quote returns a TD quote of the guest with the report data.
func (g *TDGuest) Quote(data [64]byte) ([]byte, error) {
	p := g.p
	body := g.body
	body.ReportData = data
	return p.sign(&dcap.Quote{
		Header: dcap.Header{Version: 4, AttKeyType: dcap.AttKeyECDSAP256, TEEType: dcap.TEETypeTDX, QESVN: QEISVSVN, PCESVN: p.state.PCESVN, QEVendorID: QEVendorID},
		TD:     &body,
	})
}
