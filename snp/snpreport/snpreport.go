// Package snpreport verifies AMD SEV-SNP attestation reports: the report's
// signature by the chip's endorsement key (VCEK, or a cloud's VLEK), that
// key's certificate chain to AMD's root for the product line, and the
// consistency of the certificate with the report (chip ID, TCB). The
// cryptography and the certificate rules are google/go-sev-guest's
// (verify); this package bounds what a hostile peer can make it parse or
// fetch, and returns the fields a group member decides on.
//
// Where the endorsement certificate comes from, in order: the certificate
// table the guest sent beside its report (an extended report), the
// verifier's offline bundle (Verifier.VCEKs), certificates that already
// verified a report, and last AMD's Key Distribution Service (KDS), when
// the verifier has one.
//
// A certificate table is read here, never by go-sev-guest: its
// abi.CertTable.Unmarshal (v0.15.0) adds an entry's offset and length in
// 32 bits and panics on a 72-byte table whose sum wraps, and copies every
// entry's range, so a table of overlapping entries costs its size times
// their number.
package snpreport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/internal/ovmf"
)

// ErrReport is wrapped by every refusal of a report or its certificates.
var ErrReport = errors.New("snpreport")

// ReportSize is the size of an attestation report (SEV-SNP Firmware ABI,
// table "ATTESTATION_REPORT Structure").
const ReportSize = abi.ReportSize

// Bounds on what a peer sends.
const (
	// MaxCertTable bounds the certificate table of an extended report
	// (the kernel's SNP_GET_EXT_REPORT gives at most a few pages).
	MaxCertTable = 16 << 10
	// maxCertEntries bounds its entries (VCEK or VLEK, ASK, ARK, and a few
	// more in practice).
	maxCertEntries = 16
	// maxCert bounds one certificate, sent or fetched.
	maxCert = 8 << 10
)

// GUIDs of the certificate table (SEV-SNP Firmware ABI, GUID table of
// SNP_GET_EXT_REPORT; the kernel's sev-guest documentation).
var (
	guidVCEK = ovmf.GUID(abi.VcekGUID)
	guidVLEK = ovmf.GUID(abi.VlekGUID)
)

// EndorsementCert returns the VCEK or VLEK certificate (DER) in a
// certificate table, or nil when it holds neither. The table is a list of
// 24-byte entries (GUID, offset, length) ended by an all-zero entry, the
// certificates after it.
func EndorsementCert(table []byte) ([]byte, error) {
	if len(table) == 0 {
		return nil, nil
	}
	if len(table) > MaxCertTable {
		return nil, fmt.Errorf("%w: certificate table of %d bytes, at most %d", ErrReport, len(table), MaxCertTable)
	}
	type entry struct {
		guid        [16]byte
		off, length uint64
	}
	var entries []entry
	for i := 0; ; i++ {
		if i > maxCertEntries {
			return nil, fmt.Errorf("%w: certificate table of more than %d entries", ErrReport, maxCertEntries)
		}
		if len(table) < 24*(i+1) {
			return nil, fmt.Errorf("%w: certificate table entry %d: truncated (no all-zero entry ends the table)", ErrReport, i)
		}
		b := table[24*i:]
		e := entry{guid: [16]byte(b), off: uint64(binary.LittleEndian.Uint32(b[16:])), length: uint64(binary.LittleEndian.Uint32(b[20:]))}
		if e == (entry{}) {
			for j, x := range entries {
				if x.off < 24*uint64(i+1) || x.off+x.length > uint64(len(table)) {
					return nil, fmt.Errorf("%w: certificate table entry %d: [%#x, +%#x) is not after the entries and within %d bytes", ErrReport, j, x.off, x.length, len(table))
				}
			}
			break
		}
		entries = append(entries, e)
	}
	var found []byte
	for j, x := range entries {
		if x.guid != guidVCEK && x.guid != guidVLEK {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: certificate table entry %d: a second endorsement key certificate", ErrReport, j)
		}
		if x.length == 0 || x.length > maxCert {
			return nil, fmt.Errorf("%w: certificate table entry %d: a certificate of %d bytes", ErrReport, j, x.length)
		}
		found = bytes.Clone(table[x.off : x.off+x.length])
	}
	return found, nil
}

// Evidence is what an SNP guest presents: its report, and the certificate
// table of an extended report (optional).
type Evidence struct {
	Report    []byte
	CertTable []byte
}

// Report is a verified attestation report: the fields a relying party
// decides on.
type Report struct {
	Version     uint32
	Measurement [48]byte // the launch digest
	HostData    [32]byte // chosen by the host at launch, not measured
	ReportData  [64]byte // chosen by the guest when asking for the report
	Policy      uint64   // the guest policy the VM was launched with
	VMPL        uint32   // the privilege level that asked for the report
	ChipID      [64]byte
	ReportedTCB uint64
	GuestSVN    uint32
	FamilyID    [16]byte
	ImageID     [16]byte
	ProductLine string // Milan, Genoa, Turin
	Signer      string // "VCEK" or "VLEK"
	// Debug reports whether the guest policy lets the host read the guest
	// (policy bit 19): such a report proves nothing about its secrets.
	Debug bool
}

// Verifier verifies reports. Its zero value verifies a report whose
// endorsement certificate came with it, against AMD's roots, now.
type Verifier struct {
	// VCEKs are endorsement certificates (DER) of an offline bundle,
	// tried when a report comes without one.
	VCEKs [][]byte
	// KDS fetches a missing VCEK from AMD's Key Distribution Service;
	// nil: never fetch.
	KDS *KDS
	// Dir, if set, keeps the VCEKs that verified a report across
	// restarts, one file per chip and TCB. A file there is only ever a
	// candidate: every report is verified with it in full (chain to AMD's
	// root, signature), and one that fails is ignored and replaced.
	Dir string
	// ProductLine is assumed for a version-2 report, which does not name
	// its CPU family ("Milan", "Genoa", "Turin"), when a VCEK is fetched.
	ProductLine string
	// Now is the time certificates must be valid at (default time.Now).
	Now func() time.Time
	// InsecureAllowDebug admits reports of guests whose policy lets the
	// host read their memory.
	InsecureAllowDebug bool
	// InsecureSimulationRoots are roots that are NOT AMD's, such as a
	// simulated platform's (sim.SNPPlatform): endorsement keys they
	// certify are trusted beside those AMD's roots certify. For
	// simulation and tests only.
	InsecureSimulationRoots []Roots

	mu       sync.Mutex
	verified map[string][]byte // VCEK URL -> a certificate that verified a report
}

// Roots are the root key certificate (ARK) and signing key certificate
// (ASK) of a product line.
type Roots struct {
	ProductLine string
	ARK, ASK    *x509.Certificate
}

// maxVerified bounds the certificates a Verifier remembers.
const maxVerified = 4096

// Verify verifies evidence and returns its report. ctx bounds a fetch.
func (v *Verifier) Verify(ctx context.Context, ev Evidence) (*Report, error) {
	if len(ev.Report) != ReportSize {
		return nil, fmt.Errorf("%w: report of %d bytes, want %d", ErrReport, len(ev.Report), ReportSize)
	}
	pr, err := abi.ReportToProto(ev.Report)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReport, err)
	}
	info, err := abi.ParseSignerInfo(pr.GetSignerInfo())
	if err != nil {
		return nil, fmt.Errorf("%w: signer info: %w", ErrReport, err)
	}
	if info.SigningKey != abi.VcekReportSigner && info.SigningKey != abi.VlekReportSigner {
		return nil, fmt.Errorf("%w: signed by %v, not by a VCEK or VLEK", ErrReport, info.SigningKey)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	sent, err := EndorsementCert(ev.CertTable)
	if err != nil {
		return nil, err
	}
	var candidates [][]byte
	var url string
	switch {
	case sent != nil:
		candidates = [][]byte{sent}
	case info.SigningKey == abi.VlekReportSigner:
		return nil, fmt.Errorf("%w: a VLEK-signed report must come with its VLEK certificate", ErrReport)
	default:
		candidates = v.VCEKs
		line := v.ProductLine
		if fms := pr.GetCpuid1EaxFms(); fms != 0 {
			line = kds.ProductLineFromFms(fms)
		}
		if line != "" {
			url = kds.VCEKCertURL(line, pr.GetChipId(), kds.TCBVersion(pr.GetReportedTcb()))
			v.mu.Lock()
			c := v.verified[url]
			v.mu.Unlock()
			if c == nil {
				c = v.load(url)
			}
			if c != nil {
				candidates = append([][]byte{c}, candidates...)
			}
		}
	}
	var lastErr error
	for _, c := range candidates {
		r, err := v.check(ctx, pr, c, info.SigningKey, now)
		if err == nil {
			v.remember(url, c)
			return r, nil
		}
		lastErr = err
	}
	if sent == nil && v.KDS != nil {
		if url == "" {
			return nil, fmt.Errorf("%w: a version-%d report does not name its product line: set Verifier.ProductLine to fetch its VCEK", ErrReport, pr.GetVersion())
		}
		c, err := v.KDS.fetch(ctx, url)
		if err != nil {
			return nil, err
		}
		r, err := v.check(ctx, pr, c, info.SigningKey, now)
		if err != nil {
			return nil, err
		}
		v.remember(url, c)
		return r, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("%w: no endorsement certificate: the report came without one, the offline bundle has none and no KDS is set", ErrReport)
}

func (v *Verifier) remember(url string, cert []byte) {
	if url == "" {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verified == nil || len(v.verified) >= maxVerified {
		v.verified = map[string][]byte{}
	}
	if bytes.Equal(v.verified[url], cert) {
		return
	}
	v.verified[url] = cert
	if v.Dir != "" {
		atomicfile.WriteFile(v.path(url), cert, 0o644) // best effort: memory still has it
	}
}

// path is the file in Dir that keeps the VCEK fetched from url.
func (v *Verifier) path(url string) string {
	h := sha256.Sum256([]byte(url))
	return filepath.Join(v.Dir, "vcek-"+hex.EncodeToString(h[:16])+".der")
}

// load reads a VCEK kept in Dir, bounded; nil if there is none.
func (v *Verifier) load(url string) []byte {
	if v.Dir == "" {
		return nil
	}
	f, err := os.Open(v.path(url))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCert+1))
	if err != nil || len(b) > maxCert {
		return nil
	}
	return b
}

// check verifies the report with one endorsement certificate.
func (v *Verifier) check(ctx context.Context, pr *spb.Report, cert []byte, key abi.ReportSigner, now time.Time) (*Report, error) {
	if len(cert) > maxCert {
		return nil, fmt.Errorf("%w: endorsement certificate of %d bytes", ErrReport, len(cert))
	}
	chain := &spb.CertificateChain{}
	if key == abi.VlekReportSigner {
		chain.VlekCert = cert
	} else {
		chain.VcekCert = cert
	}
	opts := &verify.Options{DisableCertFetching: true, Now: now}
	if len(v.InsecureSimulationRoots) > 0 {
		opts.TrustedRoots = map[string][]*trust.AMDRootCerts{}
		for _, line := range []string{"Milan", "Genoa", "Turin"} {
			if r, err := trust.GetDefaultRootCerts(line); err == nil {
				opts.TrustedRoots[line] = append(opts.TrustedRoots[line], r)
			}
		}
		for _, r := range v.InsecureSimulationRoots {
			opts.TrustedRoots[r.ProductLine] = append(opts.TrustedRoots[r.ProductLine],
				&trust.AMDRootCerts{ProductLine: r.ProductLine, ProductCerts: &trust.ProductCerts{Ark: r.ARK, Ask: r.ASK}})
		}
	}
	if err := verify.SnpAttestationContext(ctx, &spb.Attestation{Report: pr, CertificateChain: chain}, opts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReport, err)
	}
	x, err := x509.ParseCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: endorsement certificate: %w", ErrReport, err)
	}
	exts, err := kds.CertificateExtensions(x, key)
	if err != nil {
		return nil, fmt.Errorf("%w: endorsement certificate extensions: %w", ErrReport, err)
	}
	if key == abi.VcekReportSigner && !bytes.Equal(exts.HWID, pr.GetChipId()) && !allZero(pr.GetChipId()) {
		return nil, fmt.Errorf("%w: the VCEK is chip %x's, the report names chip %x", ErrReport, exts.HWID, pr.GetChipId())
	}
	if uint64(exts.TCBVersion) != pr.GetReportedTcb() {
		return nil, fmt.Errorf("%w: the endorsement certificate is for TCB %#x, the report's reported TCB is %#x", ErrReport, uint64(exts.TCBVersion), pr.GetReportedTcb())
	}
	product, err := kds.ParseProductName(exts.ProductName, key)
	if err != nil {
		return nil, fmt.Errorf("%w: endorsement certificate product %q: %w", ErrReport, exts.ProductName, err)
	}
	r := &Report{
		Version: pr.GetVersion(), Policy: pr.GetPolicy(), VMPL: pr.GetVmpl(), ReportedTCB: pr.GetReportedTcb(), GuestSVN: pr.GetGuestSvn(),
		ProductLine: kds.ProductLine(product), Signer: "VCEK",
	}
	if key == abi.VlekReportSigner {
		r.Signer = "VLEK"
	}
	copy(r.Measurement[:], pr.GetMeasurement())
	copy(r.HostData[:], pr.GetHostData())
	copy(r.ReportData[:], pr.GetReportData())
	copy(r.ChipID[:], pr.GetChipId())
	copy(r.FamilyID[:], pr.GetFamilyId())
	copy(r.ImageID[:], pr.GetImageId())
	policy, err := abi.ParseSnpPolicy(r.Policy)
	if err != nil {
		return nil, fmt.Errorf("%w: guest policy: %w", ErrReport, err)
	}
	r.Debug = policy.Debug
	if r.Debug && !v.InsecureAllowDebug {
		return nil, fmt.Errorf("%w: the guest policy %#x allows debugging: the host can read the guest", ErrReport, r.Policy)
	}
	return r, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// KDS fetches VCEK certificates from AMD's Key Distribution Service. A
// report cannot be checked before its VCEK is known, so a peer can name
// any chip and TCB: a KDS makes one request at a time, whatever the number
// of callers, and remembers a failure for RetryFailuresAfter, so that
// hostile reports cannot make a verifier flood AMD's service.
type KDS struct {
	// Client sends the requests (default: http.DefaultClient).
	Client interface {
		Do(*http.Request) (*http.Response, error)
	}
	// RetryFailuresAfter is how long a failed URL is not asked again
	// (default 30 s).
	RetryFailuresAfter time.Duration

	once     sync.Once
	one      chan struct{} // one request at a time
	mu       sync.Mutex
	failures map[string]kdsFailure
}

type kdsFailure struct {
	err   error
	until time.Time
}

// maxKDSFailures bounds the failures a KDS remembers.
const maxKDSFailures = 4096

// ErrFetch is wrapped by every failure to fetch a certificate.
var ErrFetch = errors.New("snpreport: fetching from AMD KDS")

func (k *KDS) fetch(ctx context.Context, url string) ([]byte, error) {
	k.once.Do(func() { k.one = make(chan struct{}, 1) })
	k.mu.Lock()
	if f, ok := k.failures[url]; ok && time.Now().Before(f.until) {
		k.mu.Unlock()
		return nil, f.err
	}
	k.mu.Unlock()
	select {
	case k.one <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrFetch, ctx.Err())
	}
	defer func() { <-k.one }()
	b, err := k.get(ctx, url)
	if err != nil && ctx.Err() == nil {
		k.mu.Lock()
		if k.failures == nil || len(k.failures) >= maxKDSFailures {
			k.failures = map[string]kdsFailure{}
		}
		retry := k.RetryFailuresAfter
		if retry <= 0 {
			retry = 30 * time.Second
		}
		k.failures[url] = kdsFailure{err: err, until: time.Now().Add(retry)}
		k.mu.Unlock()
	}
	return b, err
}

func (k *KDS) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	var c interface {
		Do(*http.Request) (*http.Response, error)
	} = http.DefaultClient
	if k.Client != nil {
		c = k.Client
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrFetch, url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCert+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, url, err)
	}
	if len(b) > maxCert {
		return nil, fmt.Errorf("%w: %s: a certificate of more than %d bytes", ErrFetch, url, maxCert)
	}
	return b, nil
}
