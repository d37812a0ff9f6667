package pgtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Proxy stands between a store and the server and can cut a connection at
// the worst moment of a transaction: when the client sends COMMIT, just
// before the server gets it (the transaction rolls back), or just after
// (it commits, but the client never hears so). Connections otherwise pass
// through untouched. It speaks only enough of the protocol to find COMMIT:
// the URL it gives disables TLS.
//
// It can also freeze every connection (Freeze): no byte passes either way
// and none is closed, as when the server is paused or the network path to
// it is dead, so that only a client's own deadlines end its waits.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	url    string

	mu    sync.Mutex
	armed string // "", "before" or "after": how the next COMMIT is cut
	cuts  int
	// thawed is closed while bytes pass; Freeze replaces it with an open
	// channel that Thaw closes. held counts the transfers waiting on it.
	thawed chan struct{}
	held   int
	// freezeAt, when set, freezes the proxy at the next COMMIT of a
	// transaction that ran a statement containing it (FreezeAtCommit).
	freezeAt string
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
	thawed := make(chan struct{})
	close(thawed)
	p := &Proxy{t: t, ln: ln, target: u.Host, thawed: thawed}
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	p.url = u.String()
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Thaw() // the transfers held let their connections end
	})
	return p
}

// Freeze stops every transfer, in both directions, on every connection,
// new ones included, until Thaw; no connection is closed. What a client
// sends meanwhile waits in the proxy or in the kernel's buffers, and
// reaches the server at Thaw (as it would a server that was paused).
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freezeLocked()
}

func (p *Proxy) freezeLocked() {
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default: // frozen already
	}
}

// Thaw lets the transfers go on.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// FreezeAtCommit arms the proxy: the next COMMIT of a transaction that ran
// a statement containing stmt freezes the proxy (Freeze) before the server
// receives it. At Thaw the COMMIT goes on to the server, which commits the
// transaction even when the client has given up on it meanwhile.
func (p *Proxy) FreezeAtCommit(stmt string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freezeAt = stmt
}

// Held is how many transfers (a client's message, or a piece of the
// server's answer) wait for Thaw now.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// pass waits until the proxy is not frozen.
func (p *Proxy) pass() {
	p.mu.Lock()
	ch := p.thawed
	select {
	case <-ch:
		p.mu.Unlock()
		return
	default:
	}
	p.held++
	p.mu.Unlock()
	<-ch
	p.mu.Lock()
	p.held--
	p.mu.Unlock()
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
		go p.back(c, s)
		go p.forward(c, s)
	}
}

// back copies the server's answers to the client, holding them while the
// proxy is frozen.
func (p *Proxy) back(c, s net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			p.pass()
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
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
	p.pass()
	if _, err := s.Write(append(n[:], rest...)); err != nil {
		return
	}
	// The statements the connection's transaction ran: their text comes in
	// a simple query ('Q') or a Parse ('P'), which names the statement a
	// later Bind ('B') runs (pgx prepares each statement once).
	prepared := map[string]string{}
	var ran []string
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
		switch hdr[0] {
		case 'P': // name, query, ...
			if f := bytes.SplitN(body, []byte{0}, 3); len(f) == 3 {
				prepared[string(f[0])] = string(f[1])
			}
		case 'B': // portal, statement, ...
			if f := bytes.SplitN(body, []byte{0}, 3); len(f) == 3 {
				ran = append(ran, prepared[string(f[1])])
			}
		case 'Q':
			if q := bytes.ToLower(body); bytes.HasPrefix(q, []byte("begin")) || bytes.HasPrefix(q, []byte("rollback")) {
				ran = ran[:0]
			}
			ran = append(ran, string(body))
		}
		if hdr[0] == 'Q' && bytes.HasPrefix(bytes.ToLower(body), []byte("commit")) {
			p.mu.Lock()
			when := p.armed
			if when != "" {
				p.armed = ""
				p.cuts++
			}
			if p.freezeAt != "" && slices.ContainsFunc(ran, func(q string) bool { return strings.Contains(q, p.freezeAt) }) {
				p.freezeAt = ""
				p.freezeLocked()
			}
			p.mu.Unlock()
			ran = ran[:0]
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
		p.pass()
		if _, err := s.Write(msg); err != nil {
			return
		}
	}
}
