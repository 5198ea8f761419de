package attest

import (
	"context"

	"github.com/magesgx/mage/sgx"
	"github.com/magesgx/mage/sim"
)

// SimBackend is the Backend of an enclave on the simulated platform. Its
// quotes chain to the platform's simulated root, which a member trusts only
// if Config.InsecureSimulationRoot is set to it.
type SimBackend struct {
	Enclave *sim.Enclave
}

// NewSimBackend returns the backend of a simulated enclave: for a Gramine
// enclave, one that is a GramineBackend.
func NewSimBackend(e *sim.Enclave) Backend {
	if e.Gramine() != nil {
		return &simGramineBackend{SimBackend{Enclave: e}}
	}
	return &SimBackend{Enclave: e}
}

// simGramineBackend is the backend of a simulated Gramine enclave.
type simGramineBackend struct{ SimBackend }

func (b *simGramineBackend) MagePayload() ([]byte, int, bool) {
	g := b.Enclave.Gramine()
	return g.Payload, g.MaxThreads, g.EDMM
}

// Identity implements Backend.
func (b *SimBackend) Identity() sgx.ReportBody {
	r, _ := b.Enclave.Report(b.Enclave.TargetInfo(), [64]byte{})
	return r.Body
}

// MageSection implements Backend.
func (b *SimBackend) MageSection() []byte { return b.Enclave.MageSection() }

// TargetInfo implements Backend.
func (b *SimBackend) TargetInfo() *sgx.TargetInfo { return b.Enclave.TargetInfo() }

// Report implements Backend.
func (b *SimBackend) Report(t *sgx.TargetInfo, data [64]byte) (*sgx.Report, error) {
	return b.Enclave.Report(t, data)
}

// VerifyReport implements Backend.
func (b *SimBackend) VerifyReport(r *sgx.Report) (*sgx.ReportBody, error) {
	return b.Enclave.VerifyReport(r)
}

// Quote implements Backend: a REPORT for the platform's quoting enclave,
// turned into a DCAP quote.
func (b *SimBackend) Quote(ctx context.Context, data [64]byte) ([]byte, error) {
	p := b.Enclave.Platform()
	r, err := b.Enclave.Report(p.QETargetInfo(), data)
	if err != nil {
		return nil, err
	}
	return p.Quote(r)
}
