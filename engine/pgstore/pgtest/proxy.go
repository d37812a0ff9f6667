package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy stands between a store and the server and can cut a connection at
// the worst moment of a transaction: when the client sends COMMIT, just
// before the server gets it (the transaction rolls back), or just after
// (it commits, but the client never hears so). Connections otherwise pass
// through untouched. It speaks only enough of the protocol to find COMMIT:
// the URL it gives disables TLS.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	url    string

	mu    sync.Mutex
	armed string // "", "before" or "after": how the next COMMIT is cut
	cuts  int
}

// NewProxy proxies the database at dbURL (a URL from URL) until the test
// ends.
func NewProxy(t testing.TB, dbURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: u.Host}
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	p.url = u.String()
	go p.accept()
	t.Cleanup(func() { ln.Close() })
	return p
}

// URL is the database's URL through the proxy.
func (p *Proxy) URL() string { return p.url }

// CutAtCommit arms the proxy: the next COMMIT a client sends is cut
// "before" the server receives it or "after".
func (p *Proxy) CutAtCommit(when string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = when
}

// Cuts is how many connections the proxy has cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() {
			io.Copy(c, s)
			c.Close()
		}()
		go p.forward(c, s)
	}
}

// forward copies the client's messages to the server, message by message,
// and cuts the connection at an armed COMMIT.
func (p *Proxy) forward(c, s net.Conn) {
	defer c.Close()
	defer s.Close()
	// The startup message: a length, then the rest.
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	rest := make([]byte, binary.BigEndian.Uint32(n[:])-4)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	if _, err := s.Write(append(n[:], rest...)); err != nil {
		return
	}
	for {
		var hdr [5]byte // type, length (which counts itself)
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		msg := append(hdr[:], body...)
		if hdr[0] == 'Q' && bytes.HasPrefix(bytes.ToLower(body), []byte("commit")) {
			p.mu.Lock()
			when := p.armed
			if when != "" {
				p.armed = ""
				p.cuts++
			}
			p.mu.Unlock()
			switch when {
			case "before":
				return // both ends closed: the server rolls back
			case "after":
				// The client's end closes first, so it never hears the
				// answer; the server gets the COMMIT, then the end of its
				// input, which it reads only after running the COMMIT.
				c.Close()
				s.Write(msg)
				if tc, ok := s.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				io.Copy(io.Discard, s)
				return
			}
		}
		if _, err := s.Write(msg); err != nil {
			return
		}
	}
}
