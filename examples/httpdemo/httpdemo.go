// Package httpdemo shows two MAGE group members talking HTTP over attested
// TLS: the server learns which member called, the client knows which
// member answered, and nobody outside the group gets through.
package httpdemo

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/magesgx/mage/attest"
)

// Serve serves HTTP on ln to group members only. The handler greets the
// caller by its member index.
func Serve(m *attest.Member, ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		peer := attest.PeerFromContext(r.Context())
		if peer == nil {
			http.Error(w, "not attested", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "hello member %d, this is member %d", peer.Index, m.Index())
	})
	srv := &http.Server{Handler: mux, ConnContext: attest.ConnContext}
	go srv.Serve(m.NewListener(ln))
	return srv
}

// Client returns an HTTP client whose connections are attested as member
// m. Use https:// URLs: the transport's TLS dial is the attested one.
func Client(m *attest.Member) *http.Client {
	return &http.Client{Transport: &http.Transport{DialTLSContext: m.DialContext}}
}

// Hello calls the server's /hello.
func Hello(ctx context.Context, c *http.Client, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/hello", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), err
}
