package bus

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// zmq4 v0.17.0 offers no socket option for TCP keepalive, for a maximum
// message size (libzmq's ZMQ_MAXMSGSIZE) or for a handshake timeout: it dials
// with a plain net.Dialer and allocates whatever length a frame header
// announces. A public bus endpoint is untrusted input, so the subscriber
// dials through its own transport instead. It is registered with zmq4 under
// guardedScheme; "tcp://host:port" endpoints are rewritten to it. The
// transport
//
//   - sets TCP keepalive explicitly (fedmsg's values: idle 60 s, interval 5 s,
//     3 probes), so a silently dead peer is noticed in about 75 s;
//   - bounds the ZMTP handshake with a read deadline, so a peer that accepts
//     TCP but never speaks ZMTP cannot hang a socket forever;
//   - optionally drops a connection that has been silent for longer than
//     Config.IdleTimeout (Fedora's bus normally carries a message a second,
//     and there is no heartbeat in fedmsg);
//   - parses the inbound ZMTP framing and fails the connection with a
//     *FrameTooLargeError before zmq4 allocates a frame over the limit.
//
// The per-socket settings travel in the context that the zmq4 socket was
// created with, which zmq4 passes on to Transport.Dial.
const guardedScheme = "statscache-tcp"

var registerOnce sync.Once
var registerErr error

func registerTransport() error {
	registerOnce.Do(func() {
		registerErr = zmq4.RegisterTransport(guardedScheme, guardedTransport{base: transport.New("tcp")})
	})
	return registerErr
}

// dialOptions are the per-socket transport settings.
type dialOptions struct {
	frameLimit       uint64
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	keepAlive        net.KeepAliveConfig
	dialTimeout      time.Duration
}

type dialOptionsKey struct{}

func withDialOptions(ctx context.Context, o dialOptions) context.Context {
	return context.WithValue(ctx, dialOptionsKey{}, o)
}

// guardedEndpoint rewrites a tcp:// endpoint to the guarded transport.
func guardedEndpoint(ep string) (string, error) {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return "", fmt.Errorf("endpoint %q: only tcp:// endpoints are supported", ep)
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return "", fmt.Errorf("endpoint %q: %w", ep, err)
	}
	return guardedScheme + "://" + rest, nil
}

type guardedTransport struct{ base transport.Transport }

func (t guardedTransport) Dial(ctx context.Context, _ transport.Dialer, addr string) (net.Conn, error) {
	o, _ := ctx.Value(dialOptionsKey{}).(dialOptions)
	d := net.Dialer{Timeout: o.dialTimeout, KeepAliveConfig: o.keepAlive}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	g := &guardedConn{Conn: c, opts: o, greeting: zmtpGreetingLen}
	if o.handshakeTimeout > 0 {
		if err := c.SetReadDeadline(time.Now().Add(o.handshakeTimeout)); err != nil {
			c.Close()
			return nil, fmt.Errorf("set handshake deadline: %w", err)
		}
	}
	return g, nil
}

func (t guardedTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	return t.base.Listen(ctx, addr)
}

func (t guardedTransport) Addr(ep string) (string, error) { return t.base.Addr(ep) }

// ZMTP 3 framing, as far as the guard needs it.
const (
	zmtpGreetingLen = 64
	flagLong        = 0x02
	flagCommand     = 0x04
)

// FrameTooLargeError is the error a connection fails with when the peer
// announces a frame over the limit. The subscriber counts it as a rejected
// message and reconnects.
type FrameTooLargeError struct {
	Size, Limit uint64
}

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("peer sent a frame of %d bytes, over the limit of %d", e.Size, e.Limit)
}

// Timeout lets net-style callers treat it as fatal, not temporary.
func (e *FrameTooLargeError) Timeout() bool { return false }

// guardedConn watches the inbound byte stream: the 64-byte greeting, then
// frames of flags, a 1- or 8-byte size, and a body.
type guardedConn struct {
	net.Conn
	opts dialOptions

	greeting  int    // greeting bytes still to pass
	hdr       []byte // header bytes of the current frame, flags first
	body      uint64 // body bytes of the current frame still to pass
	command   bool   // the current frame is a command
	handshook bool   // the peer's first command (READY) has been read
	err       error
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.handshook && g.opts.idleTimeout > 0 {
		if err := g.Conn.SetReadDeadline(time.Now().Add(g.opts.idleTimeout)); err != nil {
			return 0, err
		}
	}
	n, err := g.Conn.Read(p)
	if perr := g.scan(p[:n]); perr != nil {
		g.err = perr
		g.Conn.Close()
		return 0, perr
	}
	return n, err
}

// scan advances the framing state over b.
func (g *guardedConn) scan(b []byte) error {
	for len(b) > 0 {
		switch {
		case g.greeting > 0:
			k := min(g.greeting, len(b))
			g.greeting -= k
			b = b[k:]
		case g.body > 0:
			k := uint64(len(b))
			if k > g.body {
				k = g.body
			}
			g.body -= k
			b = b[k:]
			if g.body == 0 {
				g.frameDone()
			}
		default:
			g.hdr = append(g.hdr, b[0])
			b = b[1:]
			need := 2
			if g.hdr[0]&flagLong != 0 {
				need = 9
			}
			if len(g.hdr) < need {
				continue
			}
			var size uint64
			if need == 2 {
				size = uint64(g.hdr[1])
			} else {
				size = binary.BigEndian.Uint64(g.hdr[1:9])
			}
			g.command = g.hdr[0]&flagCommand != 0
			g.hdr = g.hdr[:0]
			if g.opts.frameLimit > 0 && size > g.opts.frameLimit {
				return &FrameTooLargeError{Size: size, Limit: g.opts.frameLimit}
			}
			g.body = size
			if size == 0 {
				g.frameDone()
			}
		}
	}
	return nil
}

func (g *guardedConn) frameDone() {
	if g.command && !g.handshook {
		// The peer's READY: the handshake is over. From now on only the
		// idle timeout (if any) bounds reads.
		g.handshook = true
		if g.opts.idleTimeout <= 0 {
			g.Conn.SetReadDeadline(time.Time{})
		}
	}
}
