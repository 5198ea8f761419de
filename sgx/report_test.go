package sgx

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestReportLayouts(t *testing.T) {
	b := make([]byte, ReportSize)
	rand.Read(b)
	r, err := ParseReport(b)
	if err != nil || !bytes.Equal(r.Marshal(), b) {
		t.Fatalf("REPORT round trip: %v", err)
	}
	if r.Body.ISVProdID != uint16(b[256])|uint16(b[257])<<8 || r.Body.MRSIGNER[0] != b[128] || r.Body.ReportData[0] != b[320] || r.MAC[0] != b[416] {
		t.Fatal("REPORT field offsets")
	}
	ti := make([]byte, TargetInfoSize)
	rand.Read(ti)
	x, err := ParseTargetInfo(ti)
	if err != nil || !bytes.Equal(x.Marshal(), ti) || x.MiscSelect != uint32(ti[52])|uint32(ti[53])<<8|uint32(ti[54])<<16|uint32(ti[55])<<24 {
		t.Fatal("TARGETINFO round trip")
	}
	kr := make([]byte, KeyRequestSize)
	rand.Read(kr)
	k, err := ParseKeyRequest(kr)
	if err != nil || !bytes.Equal(k.Marshal(), kr) || k.KeyID[0] != kr[40] {
		t.Fatal("KEYREQUEST round trip")
	}
	for _, n := range []int{0, 100, 433} {
		if _, err := ParseReport(make([]byte, n)); err == nil {
			t.Errorf("REPORT of %d bytes accepted", n)
		}
	}
}

func FuzzParseReport(f *testing.F) {
	f.Add(make([]byte, ReportSize))
	f.Add(make([]byte, TargetInfoSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseReport(b); err == nil && !bytes.Equal(r.Marshal(), b) {
			t.Fatal("REPORT round trip")
		}
		if x, err := ParseTargetInfo(b); err == nil && !bytes.Equal(x.Marshal(), b) {
			t.Fatal("TARGETINFO round trip")
		}
		if k, err := ParseKeyRequest(b); err == nil && !bytes.Equal(k.Marshal(), b) {
			t.Fatal("KEYREQUEST round trip")
		}
	})
}
