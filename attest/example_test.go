package attest_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/magesgx/mage/attest"
	"github.com/magesgx/mage/sim"
)

// Two members of a group attest each other over loopback on a simulated
// platform, each checking the other against its own table.
func Example() {
	dir, _ := os.MkdirTemp("", "platform")
	defer os.RemoveAll(dir)
	p, err := sim.Open(dir)
	if err != nil {
		panic(err)
	}
	member := func(file string) *attest.Member {
		b, _ := os.ReadFile("../testdata/sgxsdk/signed/" + file)
		e, err := p.Load(context.Background(), b, nil)
		if err != nil {
			panic(err)
		}
		m, err := attest.NewMember(attest.Config{Backend: attest.NewSimBackend(e), InsecureSimulationRoot: p.RootCertificate()})
		if err != nil {
			panic(err)
		}
		return m
	}
	alice, bob := member("g1_v0.signed.so"), member("g1_v1.signed.so")

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, _ := bob.NewListener(ln).Accept()
		ac := c.(*attest.Conn)
		if ac.Handshake(context.Background()) == nil {
			fmt.Println("bob accepted member", ac.Peer().Index)
		}
		ac.Close()
	}()
	c, err := alice.Dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	fmt.Println("alice accepted member", c.Peer().Index)
	c.Read(make([]byte, 1)) // wait for bob to finish
	// Unordered output:
	// alice accepted member 1
	// bob accepted member 0
}
