package lab

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A live peer that reads nothing keeps its receive window closed; that is
// a busy server (a Kafka broker working on a connection's earlier
// request), not a dark path, and the connection must survive it.
// TCP_USER_TIMEOUT, which this dialer used before, ended it.
func TestWatchPeerKeepsABusyPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	const silence = 300 * time.Millisecond
	c, err := FailFastDial(silence)(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	peer := <-accepted
	defer peer.Close()

	// Fill the peer's window: writes block once both buffers are full.
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := c.Write(buf); err != nil {
				werr <- err
				return
			}
		}
	}()
	select {
	case err := <-werr:
		t.Fatalf("connection to a live peer with a closed window ended: %v", err)
	case <-time.After(10 * silence):
	}
	// The peer reads again: the blocked writes go through.
	go func() { _, _ = peer.Read(make([]byte, 1<<20)) }()
}

// A connection the watchdog ended fails as the kernel fails a timed-out
// one, so the Kafka and database clients take it for a dark path as
// before. (A dark path itself needs a cut link: the lab tests' power-offs
// and isolations exercise it.)
func TestWatchedConnReportsTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := FailFastDial(time.Minute)(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	w := c.(*watchedConn)
	w.silent.Store(true)
	w.Close()
	_, err = w.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ETIMEDOUT)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a silent peer reads as a timeout, as the kernel reports it: %v", err)
}

func TestPeerGoneDecides(t *testing.T) {
	const silence = 4 * time.Second
	ms := func(d time.Duration) uint32 { return uint32(d / time.Millisecond) }
	for _, tc := range []struct {
		name  string
		steps []unix.TCPInfo // successive samples
		dead  []bool
	}{{
		name:  "idle connection: keepalive's business",
		steps: []unix.TCPInfo{{Last_ack_recv: ms(10 * time.Second)}},
		dead:  []bool{false},
	}, {
		name: "data in flight, ACKs coming",
		steps: []unix.TCPInfo{
			{Unacked: 3, Last_ack_recv: 20}, {Unacked: 1, Last_ack_recv: ms(3 * time.Second)},
		},
		dead: []bool{false, false},
	}, {
		name:  "data in flight, no ACK for the silence",
		steps: []unix.TCPInfo{{Unacked: 3, Last_ack_recv: ms(silence)}},
		dead:  []bool{true},
	}, {
		name: "closed window, probes answered, one in two dropped, backed off past the silence",
		steps: []unix.TCPInfo{
			{Notsent_bytes: 9000, Probes: 1, Last_ack_recv: ms(6 * time.Second)},
			{Notsent_bytes: 9000, Probes: 1, Last_ack_recv: ms(7 * time.Second)},
			{Notsent_bytes: 9000, Probes: 0, Last_ack_recv: ms(time.Second)},
		},
		dead: []bool{false, false, false},
	}, {
		name: "closed window, two probes unanswered",
		steps: []unix.TCPInfo{
			{Notsent_bytes: 9000, Probes: 1, Last_ack_recv: ms(5 * time.Second)},
			{Notsent_bytes: 9000, Probes: 2, Last_ack_recv: ms(6 * time.Second)},
		},
		dead: []bool{false, true},
	}, {
		name: "closed window, two probes unanswered early in the backoff",
		steps: []unix.TCPInfo{
			{Notsent_bytes: 9000, Probes: 2, Last_ack_recv: ms(time.Second)},
		},
		dead: []bool{false},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.steps {
				got := peerGone(&tc.steps[i], silence)
				require.Equal(t, tc.dead[i], got, "sample %d", i)
			}
		})
	}
}
