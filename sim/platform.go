// Package sim is a simulated SGX platform, faithful to the architecture, on
// which signed SDK enclaves are loaded (with the MAGE loader order: the
// .sgx_mage section last), initialised with EINIT's checks, and attest with
// EREPORT/EGETKEY and a quoting enclave that produces DCAP ECDSA quotes.
//
// A platform is a directory holding its secrets (created on first use, mode
// 0700, one file written atomically), so several processes on one machine
// share a platform, and two platforms do not accept each other's reports.
// The platform's root CA is a simulation root: no verifier trusts it unless
// its caller configures it explicitly.
package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/sgx"
)

// StateFile is the file in the platform directory that holds its secrets.
const StateFile = "platform.json"

// PlatformXFRM is the XSAVE feature set the simulated CPU enables (x87,
// SSE, AVX): what the loader grants enclaves that ask for more.
const PlatformXFRM = 0x7

// Platform is an open simulated SGX platform.
type Platform struct {
	dir   string
	state platformState

	rootCert, interCert, pckCert *x509.Certificate
	pckKey, attestKey            *ecdsa.PrivateKey
	qe                           *Enclave

	// What every quote shares, made once (initQEData).
	qeOnce      sync.Once
	qeErr       error
	qeAttestKey [64]byte
	qeAuthData  []byte
	qeReport    sgx.ReportBody
	qeReportSig [64]byte
	qeChainPEM  []byte
}

// platformState is the persisted part of a platform.
type platformState struct {
	Version     int      `json:"version"`
	RootSecret  []byte   `json:"root_secret"`  // 32 bytes: every key derives from it
	OwnerEpoch  []byte   `json:"owner_epoch"`  // 16 bytes
	ReportKeyID []byte   `json:"report_keyid"` // 32 bytes: CR_REPORT_KEYID
	CPUSVN      []byte   `json:"cpusvn"`       // 16 bytes
	PCESVN      uint16   `json:"pcesvn"`
	PPID        []byte   `json:"ppid"`   // 16 bytes
	FMSPC       []byte   `json:"fmspc"`  // 6 bytes
	PCEID       []byte   `json:"pce_id"` // 2 bytes
	Certs       []string `json:"certs"`  // PEM: PCK, intermediate, root
	PCKKey      string   `json:"pck_key"`
	AttestKey   string   `json:"attest_key"` // the QE's attestation key
	RootKey     string   `json:"root_key"`   // kept so tests can issue bad chains
}

// Open opens the simulated platform in dir, creating it on first use. Two
// processes opening the same new directory at once agree on one platform:
// the state file is created with an exclusive link, and the loser reads the
// winner's file.
func Open(dir string) (*Platform, error) {
	path, raw, err := readOrCreate(dir, StateFile, func() (any, error) { return newState() })
	if err != nil {
		return nil, err
	}
	p := &Platform{dir: dir}
	if err := json.Unmarshal(raw, &p.state); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	if err := p.load(); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	return p, nil
}

// readOrCreate reads the state file name in dir, creating dir and the file
// (with the state create makes, as JSON, mode 0600) on first use. Two
// processes creating it at once agree on one: the file is created with an
// exclusive link, and the loser reads the winner's.
func readOrCreate(dir, name string, create func() (any, error)) (path string, raw []byte, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("sim: platform directory: %w", err)
	}
	path = filepath.Join(dir, name)
	raw, err = os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		st, cerr := create()
		if cerr != nil {
			return "", nil, cerr
		}
		b, _ := json.MarshalIndent(st, "", " ")
		if err := atomicfile.WriteNew(path, b, 0o600); err != nil && !errors.Is(err, atomicfile.ErrExists) {
			return "", nil, fmt.Errorf("sim: creating %s: %w", path, err)
		}
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return "", nil, fmt.Errorf("sim: %w", err)
	}
	return path, raw, nil
}

// parseCerts decodes PEM certificates, naming the one at fault.
func parseCerts(pems []string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for i, c := range pems {
		blk, _ := pem.Decode([]byte(c))
		if blk == nil {
			return nil, fmt.Errorf("certificate %d: not PEM", i)
		}
		x, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		certs = append(certs, x)
	}
	return certs, nil
}

// Dir returns the platform directory.
func (p *Platform) Dir() string { return p.dir }

func (p *Platform) load() error {
	st := &p.state
	if st.Version != 1 || len(st.RootSecret) != 32 || len(st.OwnerEpoch) != 16 || len(st.ReportKeyID) != 32 ||
		len(st.CPUSVN) != 16 || len(st.PPID) != 16 || len(st.FMSPC) != 6 || len(st.PCEID) != 2 || len(st.Certs) != 3 {
		return errors.New("platform state is incomplete or of another version")
	}
	certs, err := parseCerts(st.Certs)
	if err != nil {
		return err
	}
	p.pckCert, p.interCert, p.rootCert = certs[0], certs[1], certs[2]
	if p.pckKey, err = parseECKey(st.PCKKey); err != nil {
		return fmt.Errorf("PCK key: %w", err)
	}
	if p.attestKey, err = parseECKey(st.AttestKey); err != nil {
		return fmt.Errorf("attestation key: %w", err)
	}
	p.qe = p.quotingEnclave()
	return nil
}

func parseECKey(s string) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("not PEM")
	}
	return x509.ParseECPrivateKey(blk.Bytes)
}

func marshalECKey(k *ecdsa.PrivateKey) string {
	der, _ := x509.MarshalECPrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newState() (*platformState, error) {
	st := &platformState{
		Version:     1,
		RootSecret:  randBytes(32),
		OwnerEpoch:  randBytes(16),
		ReportKeyID: randBytes(32),
		CPUSVN:      []byte{11, 11, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0},
		PCESVN:      13,
		PPID:        randBytes(16),
		FMSPC:       []byte{0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00},
		PCEID:       []byte{0, 0},
	}
	keys := make([]*ecdsa.PrivateKey, 4)
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	rootKey, interKey, pckKey, attestKey := keys[0], keys[1], keys[2], keys[3]
	certs, err := issueChain(rootKey, interKey, pckKey, st)
	if err != nil {
		return nil, err
	}
	st.Certs = certs
	st.PCKKey = marshalECKey(pckKey)
	st.AttestKey = marshalECKey(attestKey)
	st.RootKey = marshalECKey(rootKey)
	return st, nil
}

// RootCertificate returns the platform's simulated root CA. It is trusted by
// nothing unless a verifier is configured with it.
func (p *Platform) RootCertificate() *x509.Certificate { return p.rootCert }

// PCKChain returns the PCK certificate chain: PCK, intermediate, root.
func (p *Platform) PCKChain() []*x509.Certificate {
	return []*x509.Certificate{p.pckCert, p.interCert, p.rootCert}
}
