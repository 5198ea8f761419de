// Package gramine shows a Go HTTP service running as a member of a MAGE
// group inside a stock Gramine SGX enclave: it reads its group's table from
// MAGE_TABLE (set by its measured manifest), proves itself with
// /dev/attestation, and serves group members only, and relying parties
// outside the group that it lets in. cmd/ledger is the program; README.md
// has the manifest template, the group file and the commands.
package gramine

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/magesgx/mage/attest"
	mgramine "github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/sgx"
)

// Settings are what the service reads from its environment: all of it
// comes from the measured manifest (loader.env), except the libpal, which
// is a trusted file whose hash the table records.
type Settings struct {
	Table      string // MAGE_TABLE
	MaxThreads int    // MAGE_MAX_THREADS: the manifest's sgx.max_threads
	EDMM       bool   // MAGE_EDMM: the manifest's sgx.edmm_enable
	LibpalPath string // MAGE_LIBPAL: a trusted copy of the libpal.so
}

// FromEnv reads the settings Gramine passes from the manifest.
func FromEnv() (Settings, error) {
	if os.Getenv("MAGE_TABLE") == "" {
		return Settings{}, errors.New("MAGE_TABLE is not set: this program is a MAGE group member meant to run in a Gramine SGX enclave, whose final manifest (from magectl group sign) sets it; run it with gramine-sgx, not directly")
	}
	s := Settings{Table: os.Getenv("MAGE_TABLE"), LibpalPath: os.Getenv("MAGE_LIBPAL"), EDMM: os.Getenv("MAGE_EDMM") == "true"}
	n, err := strconv.Atoi(os.Getenv("MAGE_MAX_THREADS"))
	if err != nil {
		return s, fmt.Errorf("MAGE_MAX_THREADS: %w", err)
	}
	s.MaxThreads = n
	return s, nil
}

// NewMember makes the service's group member over an attestation device
// (attest.DevAttestation{} inside Gramine).
func NewMember(s Settings, dev attest.AttestationFS, egetkey func(*sgx.KeyRequest) ([16]byte, error), opts attest.Config) (*attest.Member, error) {
	raw, err := os.ReadFile(s.LibpalPath)
	if err != nil {
		return nil, err
	}
	pal, err := mgramine.ParseLibpal(raw)
	if err != nil {
		return nil, err
	}
	b, err := attest.NewGramineAttestation(attest.GramineConfig{FS: dev, Table: s.Table, MaxThreads: s.MaxThreads, EDMM: s.EDMM, Libpal: pal, EGetKey: egetkey})
	if err != nil {
		return nil, err
	}
	opts.Backend, opts.Libpal = b, pal
	return attest.NewMember(opts)
}

// Handler answers group members, naming the caller.
func Handler(m *attest.Member) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/balance", func(w http.ResponseWriter, r *http.Request) {
		peer := attest.PeerFromContext(r.Context())
		if peer == nil {
			http.Error(w, "members only", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "ledger (member %d) to member %d: balance 42\n", m.Index(), peer.Index)
	})
	return mux
}

// Serve serves the handler on ln over attested TLS.
func Serve(m *attest.Member, ln net.Listener) *http.Server {
	srv := &http.Server{Handler: Handler(m), ConnContext: attest.ConnContext}
	go srv.Serve(m.NewListener(ln))
	return srv
}
