package httpdemo

import (
	"context"
	"net"
	"testing"

	"github.com/magesgx/mage/examples/internal/fixture"
)

func TestHTTP(t *testing.T) {
	g1, outsider := fixture.Members(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(g1[1], ln)
	defer srv.Close()
	got, err := Hello(context.Background(), Client(g1[2]), ln.Addr().String())
	if err != nil || got != "hello member 2, this is member 1" {
		t.Fatalf("member 2 -> 1: %q %v", got, err)
	}
	if _, err := Hello(context.Background(), Client(outsider), ln.Addr().String()); err == nil {
		t.Fatal("an enclave of another group got an answer")
	}
}
