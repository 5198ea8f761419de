package dcap

import (
	"net/http"
	"testing"
)

// FuzzPCSResponses feeds hostile bodies and issuer-chain headers to the
// PCS response parsers.
func FuzzPCSResponses(f *testing.F) {
	f.Add([]byte(`{"tcbInfo":{"id":"SGX"},"signature":"00"}`), "-----BEGIN%20CERTIFICATE-----%0A")
	f.Add([]byte(`{"enclaveIdentity":{},"signature":"`+string(make([]byte, 128))+`"}`), "%ZZ")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if b, sig, err := signedResponse(body, "tcbInfo"); err == nil && (len(sig) != 64 || len(b) > len(body)) {
			t.Fatalf("accepted a %d-byte signature or a body longer than the response", len(sig))
		}
		h := http.Header{}
		h.Set(HeaderTCBInfoIssuerChain, header)
		if c, err := chainHeader(h, HeaderTCBInfoIssuerChain); err == nil && len(c) == 0 {
			t.Fatal("an empty chain accepted")
		}
	})
}
