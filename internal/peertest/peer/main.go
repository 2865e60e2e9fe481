// Command peer is the child program of the transports' two-process
// tests: it starts an env on -transport (tcp or quic) at 127.0.0.1:0,
// prints its address on stdout, and serves the endpoints "echo", "hang"
// and "sink" (see package peertest) until its stdin is closed or it is killed.
// With -nofile it first lowers its own descriptor limit, so that a test
// can make its accepts fail with EMFILE.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/quic"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

type echo struct{}

func (echo) Receive(c *core.Context, msg any) error {
	if m, ok := msg.(peertest.Carry); ok {
		if err := m.Ref.Send(peertest.Echo{N: m.N, S: "back"}); err != nil {
			return err
		}
		return c.Reply(peertest.Carry{Ref: c.Self(), N: m.N})
	}
	if c.IsAsk() {
		return c.Reply(msg)
	}
	return nil
}

// hang tells the asker's ref it has the ask, then never answers it.
type hang struct{}

func (hang) Receive(c *core.Context, msg any) error {
	if m, ok := msg.(peertest.Carry); ok {
		return m.Ref.Send(peertest.Echo{N: m.N, S: "hanging"})
	}
	return nil
}

// sink accepts streams and reads them to their end; after the first
// bytes, it writes one byte back, so that the opener knows they flow.
type sink struct{}

func (sink) Receive(c *core.Context, msg any) error { return nil }

func (sink) ReceiveStream(c *core.Context, msg any, s *core.Stream) error {
	go func() { // ends with the stream
		defer s.Close()
		if _, err := s.Read(make([]byte, 64<<10)); err != nil {
			return
		}
		if _, err := s.Write([]byte{1}); err != nil {
			return
		}
		io.Copy(io.Discard, s)
	}()
	return nil
}

func main() {
	transport := flag.String("transport", "tcp", "tcp or quic")
	heartbeat := flag.Duration("heartbeat", 0, "Config.HeartbeatInterval")
	peerTimeout := flag.Duration("peer-timeout", 0, "Config.PeerTimeout")
	nofile := flag.Uint64("nofile", 0, "if not 0, lower the soft RLIMIT_NOFILE to this many descriptors")
	flag.Parse()
	if *nofile > 0 {
		var lim syscall.Rlimit
		err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		if err == nil {
			lim.Cur = *nofile
			err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "set RLIMIT_NOFILE:", err)
			os.Exit(1)
		}
	}
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var tr core.Transport = tcp.New(tcp.Options{})
	if *transport == "quic" {
		tr = quic.New(quic.Options{Logger: log})
	}
	env, err := core.NewEnv(core.Config{
		Name:              "child",
		Listen:            *transport + "://127.0.0.1:0",
		Transports:        []core.Transport{tr},
		HeartbeatInterval: *heartbeat,
		PeerTimeout:       *peerTimeout,
		Logger:            log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, ep := range map[string]core.Endpoint{"echo": echo{}, "hang": hang{}, "sink": sink{}} {
		if _, err := env.Register(name, ep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println(env.Address())
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
