package core_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

type statsProbe struct {
	endpointFunc
	lost chan string
}

func (o statsProbe) OnConnected(string)           {}
func (o statsProbe) OnDisconnected(remote string) { o.lost <- remote }
func (o statsProbe) OnNetworkError(string, error) {}
func (o statsProbe) ReceiveStream(c *core.Context, msg any, s *core.Stream) error {
	if _, err := io.Copy(io.Discard, s); err != nil {
		return err
	}
	_, err := s.Write(make([]byte, 300))
	if err != nil {
		return err
	}
	return s.CloseWrite()
}

// TestStatsOfAKnownWorkload: the figures Env.Stats gives after a known
// exchange between two envs over inproc.
func TestStatsOfAKnownWorkload(t *testing.T) {
	ns := inproc.New()
	mk := func(name string) *core.Env {
		e, err := core.NewEnv(core.Config{Name: name, Listen: "inproc://" + name, Transports: []core.Transport{ns}, HeartbeatInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := mk("a"), mk("b")
	defer a.Shutdown(context.Background())

	release := make(chan struct{}, 2)
	entered := make(chan struct{}, 1)
	handled := make(chan struct{}, 100)
	sink := statsProbe{endpointFunc: func(c *core.Context, msg any) error {
		defer func() { handled <- struct{}{} }()
		switch msg {
		case "block":
			entered <- struct{}{}
			<-release
		case "fail":
			return errors.New("refused")
		}
		if c.IsAsk() {
			return c.Reply("ok")
		}
		return nil
	}}
	local, err := b.Register("sink", sink)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan string, 1)
	if _, err := a.Register("watch", statsProbe{endpointFunc: func(*core.Context, any) error { return nil }, lost: lost}); err != nil {
		t.Fatal(err)
	}
	ref, err := a.Lookup(context.Background(), local.String())
	if err != nil {
		t.Fatal(err)
	}
	// A stream: 1000 bytes out of a, 300 back.
	s, err := ref.OpenStream(context.Background(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, s); n != 300 || err != nil {
		t.Fatalf("read %d bytes back, %v", n, err)
	}
	s.Close()
	for range 10 {
		if err := ref.Send("hello"); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := ref.Ask(context.Background(), "question"); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := ref.Ask(context.Background(), "fail"); err == nil {
			t.Fatal("an ask the handler fails succeeded")
		}
	}
	for range 15 {
		<-handled
	}
	// block: a message that holds the worker. The batches before it are
	// counted once its handler runs (counts are added per batch), and
	// what is sent meanwhile waits in the inbox: b's own sends are there
	// when Send returns.
	if err := ref.Send("block"); err != nil {
		t.Fatal(err)
	}
	<-entered
	for range 3 {
		if err := local.Send("later"); err != nil {
			t.Fatal(err)
		}
	}
	bs := b.Stats()
	if len(bs.Endpoints) != 1 {
		t.Fatalf("b's endpoints: %+v", bs.Endpoints)
	}
	if e := bs.Endpoints[0]; e.Name != "sink" || e.Handled != 16 || e.Failed != 2 || e.Queued != 3 {
		t.Errorf("b's sink while blocked: %+v; want 16 handled (the stream and 15 messages), 2 failed, 3 queued", e)
	}
	release <- struct{}{}
	for range 4 {
		<-handled
	}
	if err := ref.Send("block"); err != nil {
		t.Fatal(err)
	}
	<-entered
	as, bs := a.Stats(), b.Stats()
	if e := bs.Endpoints[0]; e.Handled != 20 || e.Failed != 2 || e.Queued != 0 {
		t.Errorf("b's sink blocked again: %+v; want 20 handled, 2 failed, none queued", e)
	}
	release <- struct{}{}
	if as.Name != "a" || as.Address != "inproc://a" || as.ConnectionsUp != 1 || bs.ConnectionsUp != 1 {
		t.Errorf("a: %s at %s, %d connections up; b: %d; want 1 each", as.Name, as.Address, as.ConnectionsUp, bs.ConnectionsUp)
	}
	if as.StreamBytesOut != 1000 || as.StreamBytesIn != 300 || bs.StreamBytesIn != 1000 || bs.StreamBytesOut != 300 {
		t.Errorf("stream bytes: a out %d in %d, b in %d out %d; want 1000/300 each way", as.StreamBytesOut, as.StreamBytesIn, bs.StreamBytesIn, bs.StreamBytesOut)
	}
	if len(as.Peers) != 1 || len(bs.Peers) != 1 {
		t.Fatalf("peers: a %+v, b %+v; want one each", as.Peers, bs.Peers)
	}
	ap, bp := as.Peers[0], bs.Peers[0]
	if ap.Remote != "inproc://b" || ap.EnvName != "b" || ap.Closing || ap.LastHeard.IsZero() {
		t.Errorf("a's peer: %+v", ap)
	}
	if ap.BytesOut == 0 || ap.BytesOut != bp.BytesIn {
		t.Errorf("a wrote %d bytes, b read %d: want the same, not 0 (no heartbeats, nothing in flight)", ap.BytesOut, bp.BytesIn)
	}

	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-lost
	if as := a.Stats(); as.ConnectionsLost != 1 || len(as.Peers) != 0 {
		t.Errorf("after b shut down: a lost %d connections, peers %+v; want 1 lost, none left", as.ConnectionsLost, as.Peers)
	}
	if bs := b.Stats(); bs.ConnectionsLost != 0 {
		t.Errorf("b counts %d connections lost by its own shutdown; want 0", bs.ConnectionsLost)
	}
}
