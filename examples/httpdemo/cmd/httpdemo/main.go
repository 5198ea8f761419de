// Command httpdemo runs the HTTP example on a simulated SGX platform: two
// members of the repository's test group g1 talk HTTP over attested TLS,
// and an enclave of another group is refused. Run it from the examples
// folder: go run ./httpdemo/cmd/httpdemo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/examples/httpdemo"
	"github.com/magesgx/mage/sim"
)

func main() {
	signed := flag.String("signed", filepath.Join("..", "testdata", "sgxsdk", "signed"), "the `folder` of the repository's signed test enclaves")
	flag.Parse()
	dir, err := os.MkdirTemp("", "httpdemo-platform-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p, err := sim.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	load := func(name string) *attest.Member {
		b, err := os.ReadFile(filepath.Join(*signed, name))
		if err != nil {
			log.Fatalf("%v (run from the examples folder, or give -signed)", err)
		}
		e, err := p.Load(context.Background(), b, nil)
		if err != nil {
			log.Fatal(err)
		}
		m, err := attest.NewMember(attest.Config{Backend: attest.NewSimBackend(e), InsecureSimulationRoot: p.RootCertificate()})
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	server, client, outsider := load("g1_v1.signed.so"), load("g1_v2.signed.so"), load("g2_v3.signed.so")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := httpdemo.Serve(server, ln)
	defer srv.Close()
	got, err := httpdemo.Hello(context.Background(), httpdemo.Client(client), ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("member %d asked, member %d answered: %q\n", client.Index(), server.Index(), got)
	if _, err := httpdemo.Hello(context.Background(), httpdemo.Client(outsider), ln.Addr().String()); err != nil {
		fmt.Printf("an enclave of another group was refused: %v\n", err)
	} else {
		log.Fatal("an enclave of another group got an answer")
	}
}
