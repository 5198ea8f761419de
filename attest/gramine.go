package attest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/internal/cmac"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
)

// AttestationFS is the file layer of Gramine's /dev/attestation: whole
// files read and written by name (my_target_info, target_info,
// user_report_data, report, quote). DevAttestation is the real one; the
// simulator's sim.AttestationDevice behaves the same for tests.
type AttestationFS interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
}

// DevAttestation is /dev/attestation as a Gramine enclave sees it.
type DevAttestation struct{ Dir string } // default /dev/attestation

func (d DevAttestation) path(name string) string {
	dir := d.Dir
	if dir == "" {
		dir = "/dev/attestation"
	}
	return filepath.Join(dir, name)
}

// ReadFile reads a file; Gramine computes report and quote when opened.
func (d DevAttestation) ReadFile(name string) ([]byte, error) { return os.ReadFile(d.path(name)) }

// WriteFile writes a file whole, in one write.
func (d DevAttestation) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(d.path(name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// GramineConfig configures the backend of a Go program in a Gramine
// enclave.
type GramineConfig struct {
	// FS is the attestation device (default DevAttestation{}).
	FS AttestationFS
	// Table is the hex MAGE table, loader.env.MAGE_TABLE of the enclave's
	// own manifest (default: the MAGE_TABLE environment variable, which
	// Gramine sets from the measured manifest).
	Table string
	// MaxThreads and EDMM are the enclave's own sgx.max_threads and
	// sgx.edmm_enable, and Libpal the libpal.so it runs (a trusted file or
	// an embedded copy): the constants its group's suffix depends on.
	MaxThreads int
	EDMM       bool
	Libpal     *gramine.Libpal
	// EGetKey, if set, replaces the EGETKEY instruction (for tests with
	// the simulator); by default the ENCLU stub runs, which works only
	// inside an enclave.
	EGetKey func(*sgx.KeyRequest) ([16]byte, error)
}

// GramineAttestation is the Backend of a Go program in a Gramine enclave.
// Gramine's device state is one per process with no lock of its own, so
// every write-then-read sequence holds the backend's mutex.
type GramineAttestation struct {
	fs      AttestationFS
	payload []byte
	cfg     GramineConfig
	self    sgx.ReportBody
	ti      *sgx.TargetInfo
	mu      sync.Mutex
}

// ErrGramineTable is wrapped when the enclave's table is missing or does
// not describe the enclave.
var ErrGramineTable = errors.New("attest: Gramine MAGE table")

// NewGramineAttestation reads the enclave's identity from the device and
// checks, at start, that its table derives its own MRENCLAVE.
func NewGramineAttestation(cfg GramineConfig) (*GramineAttestation, error) {
	if cfg.FS == nil {
		cfg.FS = DevAttestation{}
	}
	if cfg.Table == "" {
		cfg.Table = os.Getenv("MAGE_TABLE")
	}
	if cfg.Table == "" {
		return nil, fmt.Errorf("%w: no MAGE_TABLE (is loader.env.MAGE_TABLE in the manifest?)", ErrGramineTable)
	}
	payload, err := hex.DecodeString(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("%w: MAGE_TABLE is not hex", ErrGramineTable)
	}
	g := &GramineAttestation{fs: cfg.FS, payload: payload, cfg: cfg}
	if g.cfg.EGetKey == nil {
		g.cfg.EGetKey = egetkey
	}
	tib, err := cfg.FS.ReadFile("my_target_info")
	if err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/my_target_info: %w", err)
	}
	if g.ti, err = sgx.ParseTargetInfo(tib); err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/my_target_info: %w", err)
	}
	r, err := g.Report(g.ti, [sgx.ReportDataSize]byte{})
	if err != nil {
		return nil, err
	}
	g.self = r.Body
	d, err := mage.NewPayloadDeriver(payload, mage.GramineConstants{Libpal: cfg.Libpal, MaxThreads: cfg.MaxThreads, EDMM: cfg.EDMM})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGramineTable, err)
	}
	if d.IsMerkle() {
		// A Merkle table holds a root, not the members: NewMember checks
		// this enclave against it with its membership or lineage proof.
		return g, nil
	}
	all, err := d.DeriveAll()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGramineTable, err)
	}
	if !slices.Contains(all, g.self.MRENCLAVE) {
		return nil, fmt.Errorf("%w: it does not derive this enclave's MRENCLAVE %s (wrong libpal, thread count or EDMM?)", ErrGramineTable, g.self.MRENCLAVE)
	}
	return g, nil
}

// Identity implements Backend.
func (g *GramineAttestation) Identity() sgx.ReportBody {
	b := g.self
	b.ReportData = [sgx.ReportDataSize]byte{}
	return b
}

// MageSection implements Backend: a Gramine enclave has none.
func (g *GramineAttestation) MageSection() []byte { return nil }

// MagePayload implements GramineBackend.
func (g *GramineAttestation) MagePayload() ([]byte, int, bool) {
	return g.payload, g.cfg.MaxThreads, g.cfg.EDMM
}

// TargetInfo implements Backend.
func (g *GramineAttestation) TargetInfo() *sgx.TargetInfo { return g.ti }

// Report implements Backend: write target_info and user_report_data
// whole, then read report (computed at open).
func (g *GramineAttestation) Report(target *sgx.TargetInfo, data [sgx.ReportDataSize]byte) (*sgx.Report, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.fs.WriteFile("target_info", target.Marshal()); err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/target_info: %w", err)
	}
	if err := g.fs.WriteFile("user_report_data", data[:]); err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/user_report_data: %w", err)
	}
	b, err := g.fs.ReadFile("report")
	if err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/report: %w", err)
	}
	r, err := sgx.ParseReport(b)
	if err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/report: %w", err)
	}
	return r, nil
}

// VerifyReport implements Backend: no Gramine file verifies a REPORT, so
// the backend gets its REPORT key with EGETKEY and checks the MAC itself.
func (g *GramineAttestation) VerifyReport(r *sgx.Report) (*sgx.ReportBody, error) {
	key, err := g.cfg.EGetKey(&sgx.KeyRequest{KeyName: sgx.KeyReport, KeyID: r.KeyID})
	if err != nil {
		return nil, fmt.Errorf("attest: EGETKEY: %w", err)
	}
	mac, _ := cmac.Sum(key[:], r.Body.Marshal())
	if !cmac.Equal(mac[:], r.MAC[:]) {
		return nil, errors.New("attest: REPORT MAC does not verify (not targeted at this enclave, or altered)")
	}
	b := r.Body
	return &b, nil
}

// Quote implements Backend: write user_report_data, then read quote.
func (g *GramineAttestation) Quote(ctx context.Context, data [sgx.ReportDataSize]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.fs.WriteFile("user_report_data", data[:]); err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/user_report_data: %w", err)
	}
	q, err := g.fs.ReadFile("quote")
	if err != nil {
		return nil, fmt.Errorf("attest: /dev/attestation/quote (is sgx.remote_attestation = \"dcap\"?): %w", err)
	}
	return q, nil
}
