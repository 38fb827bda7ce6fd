package wire

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
)

// A dial that timed out must reach franz-go as a dial failure that is not a
// timeout (so it refreshes metadata), with its cause still findable; other
// errors and successes pass through unchanged.
func TestDialTimeoutsAsFailures(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	if !timeout.Timeout() {
		t.Fatal("test setup: not a timeout")
	}
	d := dialTimeoutsAsFailures(func(context.Context, string, string) (net.Conn, error) { return nil, timeout })
	_, err := d(context.Background(), "tcp", "198.18.1.11:9092")
	var ne *net.OpError
	if !errors.As(err, &ne) || ne.Op != "dial" || ne.Timeout() {
		t.Fatalf("got %#v, want a dial *net.OpError that is not a timeout", err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("cause lost: %v", err)
	}

	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	d = dialTimeoutsAsFailures(func(context.Context, string, string) (net.Conn, error) { return nil, refused })
	if _, err := d(context.Background(), "tcp", "x:1"); err != refused {
		t.Fatalf("non-timeout error changed: %v", err)
	}
}
