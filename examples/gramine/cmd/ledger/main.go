// Command ledger is a MAGE group member meant to run in a Gramine SGX
// enclave: it serves its group over attested TLS on :8443.
package main

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/dcap"
	service "github.com/magesgx/mage/examples/gramine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := service.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	// Real quotes are verified with Intel collateral from the PCCS the
	// manifest names (loader.env.PCCS_URL), kept fresh by a cache.
	cache := &dcap.Cache{PCS: &dcap.PCS{BaseURL: os.Getenv("PCCS_URL")}}
	defer cache.Close()
	m, err := service.NewMember(s, attest.DevAttestation{}, nil, attest.Config{Collateral: cache, Evidence: attest.Remote,
		AcceptTCB: []dcap.TCBStatus{dcap.UpToDate, dcap.SWHardeningNeeded}, HandshakeTimeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	srv := service.Serve(m, ln)
	log.Printf("ledger: member %d of %d, serving on %s", m.Index(), len(m.Group()), ln.Addr())
	<-ctx.Done()
	srv.Close()
}
