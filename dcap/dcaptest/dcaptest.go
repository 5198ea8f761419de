// Package dcaptest serves DCAP collateral the way Intel's PCS (API version
// 4) and a PCCS do, from a fixed collateral set, so that code which
// fetches collateral can be tested without Intel.
package dcaptest

import (
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"crypto/x509"

	"github.com/magesgx/mage/dcap"
)

// Prefix is the path under which the server serves the PCS v4 API;
// TDXPrefix, the TDX API's (TDX TCB Info and the TD QE's identity).
const (
	Prefix    = "/sgx/certification/v4"
	TDXPrefix = "/tdx/certification/v4"
)

// Server is a fake PCS. Its URL plus Prefix is a dcap.PCS BaseURL.
type Server struct {
	*httptest.Server
	col   *dcap.Collateral
	fmspc string
	tdx   *dcap.Collateral // served under TDXPrefix, if set

	mu       sync.Mutex
	requests map[string]int
	// Fail, if set, answers a request instead of the collateral when it
	// returns a status other than 0 (for error and retry tests).
	Fail func(r *http.Request) int
}

// NewServer serves col: TCB Info for fmspc (12 hex digits) at /tcb, the QE
// Identity at /qe/identity, col.PCKCRL at /pckcrl for both CAs, and the
// root CA CRL at /rootcacrl, each with the headers PCS sends. Close it
// when done.
func NewServer(col *dcap.Collateral, fmspc string) *Server {
	s := &Server{col: col, fmspc: strings.ToUpper(fmspc), requests: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// BaseURL is the API base to give dcap.PCS.
func (s *Server) BaseURL() string { return s.URL + Prefix }

// SetTDX makes the server serve col's TDX TCB Info (for its FMSPC) and TD
// QE identity under TDXPrefix.
func (s *Server) SetTDX(col *dcap.Collateral) {
	s.mu.Lock()
	s.tdx = col
	s.mu.Unlock()
}

// SetCollateral makes the server serve col from now on.
func (s *Server) SetCollateral(col *dcap.Collateral) {
	s.mu.Lock()
	s.col = col
	s.mu.Unlock()
}

// Requests returns how many requests each path received.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func chainHeader(c []*x509.Certificate) string {
	var b strings.Builder
	for _, x := range c {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw}))
	}
	return url.QueryEscape(b.String())
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, Prefix)
	s.mu.Lock()
	s.requests[path]++
	fail, col := s.Fail, s.col
	if strings.HasPrefix(path, TDXPrefix) {
		if path = strings.TrimPrefix(path, TDXPrefix); path != "/tcb" && path != "/qe/identity" || s.tdx == nil {
			path = "none"
		}
		col = s.tdx
	}
	s.mu.Unlock()
	if fail != nil {
		if code := fail(r); code != 0 {
			http.Error(w, http.StatusText(code), code)
			return
		}
	}
	q := r.URL.Query()
	if u := q.Get("update"); u != "" && u != "standard" && u != "early" {
		w.Header().Set("Error-Message", "invalid update")
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	switch path {
	case "/tcb":
		if !strings.EqualFold(q.Get("fmspc"), s.fmspc) {
			w.Header().Set("Error-Message", "no TCB Info for this FMSPC")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set(dcap.HeaderTCBInfoIssuerChain, chainHeader(col.TCBInfoIssuerChain))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"tcbInfo":%s,"signature":"%s"}`, col.TCBInfo, hex.EncodeToString(col.TCBInfoSignature))
	case "/qe/identity":
		w.Header().Set(dcap.HeaderQEIdentityIssuerChain, chainHeader(col.QEIdentityIssuerChain))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"enclaveIdentity":%s,"signature":"%s"}`, col.QEIdentity, hex.EncodeToString(col.QEIdentitySignature))
	case "/pckcrl":
		if ca := q.Get("ca"); ca != "processor" && ca != "platform" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		chain := col.PCKCRLIssuerChain
		if chain == nil {
			chain = col.TCBInfoIssuerChain[len(col.TCBInfoIssuerChain)-1:]
		}
		w.Header().Set(dcap.HeaderPCKCRLIssuerChain, chainHeader(chain))
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(col.PCKCRL.Raw)
	case "/rootcacrl":
		w.Write([]byte(hex.EncodeToString(col.RootCACRL.Raw))) // as a PCCS serves it
	default:
		http.NotFound(w, r)
	}
}
