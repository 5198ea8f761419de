// Package grpccreds provides gRPC transport credentials for MAGE group
// members: every gRPC connection runs the attested TLS exchange, and a
// server handler learns the calling member from the peer's AuthInfo.
package grpccreds

import (
	"context"
	"net"

	"github.com/magesgx/mage/attest"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthInfo is the credentials.AuthInfo of an attested connection.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Peer *attest.Peer
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return "mage-attested-tls" }

type creds struct{ m *attest.Member }

// New returns transport credentials for member m, for both grpc.NewServer
// (grpc.Creds) and grpc.NewClient (grpc.WithTransportCredentials).
func New(m *attest.Member) credentials.TransportCredentials { return &creds{m: m} }

func (c *creds) handshake(ctx context.Context, ac *attest.Conn) (net.Conn, credentials.AuthInfo, error) {
	if err := ac.Handshake(ctx); err != nil {
		return nil, nil, err
	}
	return ac, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Peer: ac.Peer()}, nil
}

func (c *creds) ClientHandshake(ctx context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.handshake(ctx, c.m.Client(raw))
}

func (c *creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.handshake(context.Background(), c.m.Server(raw))
}

func (c *creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "mage-attested-tls", SecurityVersion: "1"}
}

func (c *creds) Clone() credentials.TransportCredentials { return &creds{m: c.m} }

func (c *creds) OverrideServerName(string) error { return nil }

// PeerFromContext returns the attested member calling a gRPC handler.
func PeerFromContext(ctx context.Context) *attest.Peer {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	if !ok {
		return nil
	}
	return ai.Peer
}
