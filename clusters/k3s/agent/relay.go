package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	// named apart from the lab of the package's tests
	chaoslab "github.com/chaosloop/chaosloop/lab"
)

// A relay carries one TCP connection of the run's load client through a
// node: the agent's pod (hostNetwork) dials the service from the node's
// network namespace, so the node's isolate rules apply to the connection
// as to any of the node's own, and the bytes travel on the standard
// streams of a pod exec (Client.Dial): no port listens on the node.

// relayOK is the relay's handshake: the connection is up, the bytes that
// follow on its output are the peer's.
const relayOK = "ok\n"

// Relay dials address from this network namespace, within dialTimeout,
// writes the handshake "ok\n" to out, then copies in to the connection and
// the connection to out until the peer closes it. It dials without the
// agent's exempt mark: the node's isolate rules must cut the relay off as
// they cut the node's services off. A dial that fails writes nothing.
//
// in's end half-closes the connection (the peer still answers what it was
// sent); the connection's end ends the relay, though a goroutine may stay
// blocked reading in (a process that exits does not care). silence bounds
// how long a dark peer keeps the connection (lab.FailFastDialer,
// lab.WatchPeer). It returns nil when the peer closed the connection.
func Relay(ctx context.Context, network, address string, in io.Reader, out io.Writer, dialTimeout, silence time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	c, err := chaoslab.FailFastDialer(silence).DialContext(dctx, network, address)
	cancel()
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	conn := chaoslab.WatchPeer(c, silence)
	defer conn.Close()
	if _, err := io.WriteString(out, relayOK); err != nil {
		return fmt.Errorf("relay: handshake: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	inErr := make(chan error, 1)
	go func() {
		err := relayIn(conn, in)
		inErr <- err // before the close, so that Relay finds the cause
		if err != nil {
			conn.Close()
		}
	}()
	// plain Reader and Writer: io.Copy would otherwise take the TCP
	// connection's own ReadFrom/WriteTo and skip WatchPeer's Read and
	// Write, which report a dark peer as a timeout
	_, err = io.Copy(struct{ io.Writer }{out}, struct{ io.Reader }{conn})
	if ctx.Err() != nil {
		return fmt.Errorf("relay: %w", ctx.Err())
	}
	select {
	case e := <-inErr:
		if e != nil {
			err = e // the copy in failed first and closed the connection
		}
	default:
	}
	if err != nil {
		return fmt.Errorf("relay to %s: %w", address, err)
	}
	return nil
}

// relayIn copies in to conn, then half-closes conn: the peer still
// answers what it was sent.
func relayIn(conn net.Conn, in io.Reader) error {
	if _, err := io.Copy(struct{ io.Writer }{conn}, struct{ io.Reader }{in}); err != nil {
		return err
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		// a connection closed already has ended the relay: no error of its own
		_ = cw.CloseWrite()
	}
	return nil
}
