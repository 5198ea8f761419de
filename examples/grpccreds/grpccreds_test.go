package grpccreds

import (
	"context"
	"net"
	"testing"

	"github.com/magesgx/mage/examples/internal/fixture"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type checker struct {
	healthpb.UnimplementedHealthServer
	seen chan int
}

func (c *checker) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if p := PeerFromContext(ctx); p != nil {
		c.seen <- p.Index
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestGRPC(t *testing.T) {
	g1, outsider := fixture.Members(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(New(g1[0])))
	c := &checker{seen: make(chan int, 1)}
	healthpb.RegisterHealthServer(srv, c)
	go srv.Serve(ln)
	defer srv.Stop()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(New(g1[2])))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if idx := <-c.seen; idx != 2 {
		t.Fatalf("server saw member %d, want 2", idx)
	}
	bad, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(New(outsider)))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := healthpb.NewHealthClient(bad).Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("an enclave of another group was served")
	}
}
