package dcap

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Intel SGX Provisioning Certification Service (PCS) API, version 4,
// as Intel documents it ("Intel SGX and Intel TDX Provisioning
// Certification Service (PCS) API", sections "Get PCK Cert CRL V4", "Get
// TCB Info V4", "Get Quoting Enclave Identity V4"), and as a Provisioning
// Certificate Caching Service (PCCS) serves it under its own base URL.
const (
	// IntelPCS is the base URL of Intel's PCS for SGX, version 4.
	IntelPCS = "https://api.trustedservices.intel.com/sgx/certification/v4"
	// IntelRootCACRLURL is the CRL distribution point of the Intel SGX
	// Root CA certificate.
	IntelRootCACRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

	// Response headers carrying each response's issuer chain, URL-encoded
	// PEM.
	HeaderPCKCRLIssuerChain     = "SGX-PCK-CRL-Issuer-Chain"
	HeaderTCBInfoIssuerChain    = "TCB-Info-Issuer-Chain"
	HeaderQEIdentityIssuerChain = "SGX-Enclave-Identity-Issuer-Chain"

	maxResponse = 1 << 20 // bytes; collateral is a few KiB
)

// Update selects the TCB Info and QE Identity a PCS serves: "standard"
// (the default) or "early" (the next TCB recovery's, published ahead).
type Update string

// Update values of the PCS v4 API.
const (
	UpdateStandard Update = "standard"
	UpdateEarly    Update = "early"
)

// CA is a PCK certificate's issuing CA, as the pckcrl endpoint names it.
type CA string

// The PCK CAs.
const (
	CAProcessor CA = "processor"
	CAPlatform  CA = "platform"
)

// PCKCAOf says which CA issued a PCK certificate, from its issuer's name.
func PCKCAOf(pck *x509.Certificate) (CA, error) {
	switch cn := pck.Issuer.CommonName; {
	case strings.Contains(cn, "PCK Processor CA"):
		return CAProcessor, nil
	case strings.Contains(cn, "PCK Platform CA"):
		return CAPlatform, nil
	default:
		return "", fmt.Errorf("%w: PCK certificate issued by %q, neither the PCK Processor nor the Platform CA", ErrChain, truncate(cn, 80))
	}
}

// Getter sends an HTTP request; *http.Client is one. Tests and air-gapped
// deployments supply their own.
type Getter interface {
	Do(*http.Request) (*http.Response, error)
}

// ErrFetch is wrapped by every failure to fetch collateral.
var ErrFetch = errors.New("dcap: fetching collateral")

// PCS fetches collateral from Intel's PCS or a PCCS. Its zero value uses
// Intel's PCS with net/http. It retries a request that failed with a 5xx
// or 429 status (or a network error) with exponential backoff, honouring
// Retry-After; it never retries any other 4xx.
type PCS struct {
	// BaseURL is the API base, ending in /sgx/certification/v4 (default
	// IntelPCS). A PCCS serves the same paths under its own host.
	BaseURL string
	// RootCACRLURL is where the root CA's CRL is fetched from (default: a
	// PCCS's /rootcacrl when BaseURL is set, else IntelRootCACRLURL, the
	// root certificate's CRL distribution point).
	RootCACRLURL string
	// Update selects standard or early TCB data (default standard).
	Update Update
	// Getter sends the requests (default: an http.Client that follows
	// redirects only within the origin asked). Whatever the Getter, an
	// answer from another scheme or host is refused.
	Getter Getter
	// Timeout bounds each attempt (default 30s).
	Timeout time.Duration
	// Retries is the number of retries after a failed attempt (default 3;
	// negative: none).
	Retries int
	// Backoff is the first retry's delay, doubled at each retry (default
	// 200ms).
	Backoff time.Duration
	// InsecureHTTP allows http:// URLs. Collateral is signed, but over
	// plain HTTP anyone on the path can withhold it, serve stale copies
	// until they expire, or answer for another host; by default only
	// https:// is used. For a PCCS on a trusted local network, or tests.
	InsecureHTTP bool
}

// ErrInsecureURL is wrapped when a URL is not https:// (and
// PCS.InsecureHTTP is not set), or a response was redirected to another
// scheme or host.
var ErrInsecureURL = errors.New("dcap: collateral URL refused")

// checkURL refuses a URL that is not https:// unless p.InsecureHTTP.
func (p *PCS) checkURL(u string) (*url.URL, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInsecureURL, err)
	}
	switch {
	case pu.Scheme == "https" && pu.Host != "":
	case pu.Scheme == "http" && pu.Host != "" && p.InsecureHTTP:
	case pu.Scheme == "http" && pu.Host != "":
		return nil, fmt.Errorf("%w: %s is plain HTTP (use https://, or set InsecureHTTP / --insecure-http for a trusted local PCCS)", ErrInsecureURL, truncate(u, 200))
	default:
		return nil, fmt.Errorf("%w: %q is not an https:// URL", ErrInsecureURL, truncate(u, 200))
	}
	return pu, nil
}

// sameOrigin reports whether two URLs have the same scheme and host.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// checkRedirect follows redirects only within the origin of the first
// request.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return fmt.Errorf("%w: more than 5 redirects", ErrInsecureURL)
	}
	if !sameOrigin(req.URL, via[0].URL) {
		return fmt.Errorf("%w: redirect from %s://%s to %s://%s", ErrInsecureURL, via[0].URL.Scheme, via[0].URL.Host, req.URL.Scheme, truncate(req.URL.Host, 100))
	}
	return nil
}

func (p *PCS) base() string {
	if p.BaseURL == "" {
		return IntelPCS
	}
	return strings.TrimSuffix(p.BaseURL, "/")
}

func (p *PCS) getter() Getter {
	if p.Getter == nil {
		// net/http's transport, pooled; redirects stay within the origin.
		return &http.Client{CheckRedirect: checkRedirect}
	}
	return p.Getter
}

// get fetches url and returns the body and headers of a 200 response.
func (p *PCS) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	timeout, retries, backoff := p.Timeout, p.Retries, p.Backoff
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if retries == 0 {
		retries = 3
	}
	if backoff <= 0 {
		backoff = 200 * time.Millisecond
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		body, hdr, retryAfter, err := p.once(ctx, u, timeout)
		if err == nil {
			return body, hdr, nil
		}
		lastErr = err
		if retryAfter < 0 || attempt >= retries || ctx.Err() != nil {
			return nil, nil, lastErr
		}
		wait := backoff << attempt
		if retryAfter > wait {
			wait = min(retryAfter, time.Minute)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%w: %w (after %v)", ErrFetch, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// once makes one attempt. retryAfter is negative when the failure must not
// be retried, else the delay the server asked for (0: none).
func (p *PCS) once(ctx context.Context, u string, timeout time.Duration) (body []byte, hdr http.Header, retryAfter time.Duration, err error) {
	pu, err := p.checkURL(u)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	resp, err := p.getter().Do(req)
	if err != nil {
		if errors.Is(err, ErrInsecureURL) {
			return nil, nil, -1, fmt.Errorf("%w: GET %s: %w", ErrFetch, u, err)
		}
		return nil, nil, 0, fmt.Errorf("%w: GET %s: %w", ErrFetch, u, err)
	}
	defer resp.Body.Close()
	// A Getter of its own may follow redirects: the answer must still come
	// from the origin asked.
	if resp.Request != nil && resp.Request.URL != nil && !sameOrigin(resp.Request.URL, pu) {
		return nil, nil, -1, fmt.Errorf("%w: GET %s: %w: answered from %s://%s", ErrFetch, u, ErrInsecureURL, resp.Request.URL.Scheme, truncate(resp.Request.URL.Host, 100))
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: GET %s: reading the response: %w", ErrFetch, u, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && len(body) > maxResponse:
		return nil, nil, -1, fmt.Errorf("%w: GET %s: response over %d bytes", ErrFetch, u, maxResponse)
	case resp.StatusCode == http.StatusOK:
		return body, resp.Header, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		ra := time.Duration(0)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ra = time.Duration(s) * time.Second
		}
		return nil, nil, ra, fmt.Errorf("%w: GET %s: %s", ErrFetch, u, resp.Status)
	default:
		return nil, nil, -1, fmt.Errorf("%w: GET %s: %s (%s)", ErrFetch, u, resp.Status, truncate(resp.Header.Get("Error-Message"), 200))
	}
}

func chainHeader(hdr http.Header, name string) ([]*x509.Certificate, error) {
	v := hdr.Get(name)
	if v == "" {
		return nil, fmt.Errorf("%w: response has no %s header", ErrFetch, name)
	}
	s, err := url.QueryUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %w", ErrFetch, name, err)
	}
	c, err := ParseCertChain([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %w", ErrFetch, name, err)
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("%w: %s header holds no certificate", ErrFetch, name)
	}
	return c, nil
}

// signedResponse splits {"<field>": {...}, "signature": "<hex>"} keeping
// the signed value's exact bytes.
func signedResponse(b []byte, field string) (body, sig []byte, err error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	raw, ok := j[field]
	if !ok {
		return nil, nil, fmt.Errorf("%w: response has no %q", ErrFetch, field)
	}
	var s string
	if err := json.Unmarshal(j["signature"], &s); err != nil {
		return nil, nil, fmt.Errorf("%w: response has no signature", ErrFetch)
	}
	sig, err = parseSig(s)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	return bytes.Clone(bytes.TrimSpace(raw)), sig, nil
}

func (p *PCS) query() string {
	if p.Update == "" {
		return ""
	}
	return "update=" + url.QueryEscape(string(p.Update))
}

// TCBInfo fetches the TCB Info of a platform by FMSPC (12 hex digits).
func (p *PCS) TCBInfo(ctx context.Context, fmspc string) (body, sig []byte, chain []*x509.Certificate, err error) {
	return p.tcbInfo(ctx, fmspc, false)
}

// TDXTCBInfo fetches the TDX TCB Info of a platform by FMSPC, from the
// TDX API beside the SGX one (/tdx/certification/v4 for
// /sgx/certification/v4, as Intel's PCS and PCCS serve it).
func (p *PCS) TDXTCBInfo(ctx context.Context, fmspc string) (body, sig []byte, chain []*x509.Certificate, err error) {
	return p.tcbInfo(ctx, fmspc, true)
}

// tdxBase is the TDX API's base beside the SGX one.
func (p *PCS) tdxBase() (string, error) {
	b := p.base()
	i := strings.LastIndex(b, "/sgx/certification/")
	if i < 0 {
		return "", fmt.Errorf("%w: the PCS base %q has no /sgx/certification/ to find the TDX API beside", ErrFetch, truncate(b, 80))
	}
	return b[:i] + "/tdx/certification/" + b[i+len("/sgx/certification/"):], nil
}

func (p *PCS) tcbInfo(ctx context.Context, fmspc string, tdx bool) (body, sig []byte, chain []*x509.Certificate, err error) {
	if b, err := hex.DecodeString(fmspc); err != nil || len(b) != 6 {
		return nil, nil, nil, fmt.Errorf("%w: FMSPC %q: want 12 hex digits", ErrFetch, truncate(fmspc, 20))
	}
	base := p.base()
	if tdx {
		if base, err = p.tdxBase(); err != nil {
			return nil, nil, nil, err
		}
	}
	u := base + "/tcb?fmspc=" + strings.ToUpper(fmspc)
	if q := p.query(); q != "" {
		u += "&" + q
	}
	b, hdr, err := p.get(ctx, u)
	if err != nil {
		return nil, nil, nil, err
	}
	if chain, err = chainHeader(hdr, HeaderTCBInfoIssuerChain); err != nil {
		return nil, nil, nil, err
	}
	body, sig, err = signedResponse(b, "tcbInfo")
	return body, sig, chain, err
}

// QEIdentity fetches the Quoting Enclave's identity.
func (p *PCS) QEIdentity(ctx context.Context) (body, sig []byte, chain []*x509.Certificate, err error) {
	return p.qeIdentity(ctx, false)
}

// TDQEIdentity fetches the TD Quoting Enclave's identity (TDX API).
func (p *PCS) TDQEIdentity(ctx context.Context) (body, sig []byte, chain []*x509.Certificate, err error) {
	return p.qeIdentity(ctx, true)
}

func (p *PCS) qeIdentity(ctx context.Context, tdx bool) (body, sig []byte, chain []*x509.Certificate, err error) {
	base := p.base()
	if tdx {
		if base, err = p.tdxBase(); err != nil {
			return nil, nil, nil, err
		}
	}
	u := base + "/qe/identity"
	if q := p.query(); q != "" {
		u += "?" + q
	}
	b, hdr, err := p.get(ctx, u)
	if err != nil {
		return nil, nil, nil, err
	}
	if chain, err = chainHeader(hdr, HeaderQEIdentityIssuerChain); err != nil {
		return nil, nil, nil, err
	}
	body, sig, err = signedResponse(b, "enclaveIdentity")
	return body, sig, chain, err
}

// PCKCRL fetches the CRL of a PCK CA, with its issuer chain.
func (p *PCS) PCKCRL(ctx context.Context, ca CA) (*x509.RevocationList, []*x509.Certificate, error) {
	if ca != CAProcessor && ca != CAPlatform {
		return nil, nil, fmt.Errorf("%w: CA %q, want processor or platform", ErrFetch, truncate(string(ca), 20))
	}
	b, hdr, err := p.get(ctx, p.base()+"/pckcrl?ca="+string(ca)+"&encoding=der")
	if err != nil {
		return nil, nil, err
	}
	chain, err := chainHeader(hdr, HeaderPCKCRLIssuerChain)
	if err != nil {
		return nil, nil, err
	}
	crl, err := ParseCRL(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: PCK CRL: %w", ErrFetch, err)
	}
	return crl, chain, nil
}

// RootCACRL fetches the root CA's CRL.
func (p *PCS) RootCACRL(ctx context.Context) (*x509.RevocationList, error) {
	u := p.RootCACRLURL
	if u == "" && p.BaseURL != "" {
		u = p.base() + "/rootcacrl" // a PCCS serves it (hex DER)
	}
	if u == "" {
		u = IntelRootCACRLURL
	}
	b, _, err := p.get(ctx, u)
	if err != nil {
		return nil, err
	}
	crl, err := ParseCRL(b)
	if err != nil {
		return nil, fmt.Errorf("%w: root CA CRL: %w", ErrFetch, err)
	}
	return crl, nil
}

// Fetch fetches all the collateral a quote needs, uncached.
func (p *PCS) Fetch(ctx context.Context, q *Quote) (*Collateral, error) {
	k, err := keysOf(q)
	if err != nil {
		return nil, err
	}
	c := &Collateral{}
	if c.TCBInfo, c.TCBInfoSignature, c.TCBInfoIssuerChain, err = p.tcbInfo(ctx, k.fmspc, k.tdx); err != nil {
		return nil, err
	}
	if c.QEIdentity, c.QEIdentitySignature, c.QEIdentityIssuerChain, err = p.qeIdentity(ctx, k.tdx); err != nil {
		return nil, err
	}
	if c.PCKCRL, c.PCKCRLIssuerChain, err = p.PCKCRL(ctx, k.ca); err != nil {
		return nil, err
	}
	if c.RootCACRL, err = p.RootCACRL(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Collateral implements CollateralSource, uncached (see Cache).
func (p *PCS) Collateral(ctx context.Context, q *Quote) (*Collateral, error) { return p.Fetch(ctx, q) }

// collateralKeys is what a quote's collateral depends on: its platform's
// FMSPC, its PCK certificate's CA, and whether it is a TD quote (whose TCB
// Info and QE identity are TDX's, never SGX's).
type collateralKeys struct {
	fmspc string
	ca    CA
	tdx   bool
}

func keysOf(q *Quote) (collateralKeys, error) {
	chain, err := q.PCKChain()
	if err != nil {
		return collateralKeys{}, fmt.Errorf("%w (collateral is found by the PCK certificate; give the chain with its CA)", err)
	}
	if len(chain) < 2 {
		return collateralKeys{}, fmt.Errorf("%w: the quote's PCK chain has %d certificate(s); add the PCK CA certificate (and the root) to find its collateral", ErrChain, len(chain))
	}
	x, err := ParsePCKExtensions(chain[0])
	if err != nil {
		return collateralKeys{}, err
	}
	ca, err := PCKCAOf(chain[0])
	if err != nil {
		return collateralKeys{}, err
	}
	return collateralKeys{fmspc: strings.ToUpper(hex.EncodeToString(x.FMSPC[:])), ca: ca, tdx: q.TD != nil}, nil
}

// CollateralSource gives the collateral to verify a quote with: a fixed
// bundle (Fixed), Intel's PCS or a PCCS (PCS), or a cache in front of one
// (Cache).
type CollateralSource interface {
	Collateral(ctx context.Context, q *Quote) (*Collateral, error)
}

// Fixed is a CollateralSource that always gives the same collateral, for
// air-gapped verification with a bundle fetched beforehand.
type Fixed struct{ C *Collateral }

// Collateral implements CollateralSource.
func (f Fixed) Collateral(context.Context, *Quote) (*Collateral, error) {
	if f.C == nil {
		return nil, fmt.Errorf("%w: none given", ErrCollateral)
	}
	return f.C, nil
}
