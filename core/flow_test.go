package core

import (
	"context"
	"errors"
	"testing"
)

func testPeer() *peer {
	p := &peer{env: &Env{maxMsg: DefaultMaxMessageSize}, dialAddr: "test://peer", closed: make(chan struct{})}
	p.out = newOutbox(p)
	return p
}

func TestAPeerThatSendsWithoutCreditBreaksTheProtocol(t *testing.T) {
	p := testPeer()
	if err := p.received("x", initialWindow); err != nil {
		t.Fatalf("a message within the initial window: %v", err)
	}
	if err := p.received("x", 1); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a message after the credit ran out: %v; want ErrProtocol", err)
	}
	if err := p.received("y", 1); err != nil {
		t.Fatalf("another endpoint's credit is its own: %v", err)
	}
}

func TestConsumedMessagesGiveCreditBackUpToTheLimit(t *testing.T) {
	p := testPeer()
	const limit = 1 << 20
	for range 64 {
		if err := p.received("x", 1024); err != nil {
			t.Fatal(err)
		}
	}
	p.consumed("x", limit, 1024)
	w := p.windows["x"]
	if got, want := w.avail+w.queued, int64(limit); got != want {
		t.Fatalf("after one message handled, the peer may send plus what waits = %d; want the limit %d", got, want)
	}
	if len(p.out.ctrl) != 1 {
		t.Fatalf("%d control frames queued; want one Credit frame", len(p.out.ctrl))
	}
	var env envelope
	if err := decodeEnvelope(p.out.ctrl[0].b, &env); err != nil || env.Kind != kindCredit || env.To != "x" || env.ID != uint64(limit-64*1024+1024) {
		t.Fatalf("credit frame %+v, %v; want Credit to x of %d bytes", env, err, limit-64*1024+1024)
	}
	// Small further steps are batched: no frame until a quarter of the limit.
	for range 63 {
		p.consumed("x", limit, 1024)
	}
	if len(p.out.ctrl) != 1 {
		t.Fatalf("%d control frames after the rest was handled; want credit given back in batches", len(p.out.ctrl))
	}
}

func TestDroppedMessagesGiveTheirCreditBackAtOnce(t *testing.T) {
	p := testPeer()
	if err := p.received("nobody", 100); err != nil {
		t.Fatal(err)
	}
	p.consumed("nobody", 0, 100)
	if _, kept := p.windows["nobody"]; kept {
		t.Error("the window of a name at rest is kept: a peer could grow the table with names")
	}
	if len(p.out.ctrl) != 1 {
		t.Fatalf("%d control frames; want one Credit frame returning the 100 bytes", len(p.out.ctrl))
	}
}

type blockingEndpoint struct{ release chan struct{} }

func (b blockingEndpoint) Receive(*Context, any) error {
	<-b.release
	return nil
}

func TestALocalSendToAFullInboxFailsAtOnce(t *testing.T) {
	e := newTestEnv(t, "local", nil)
	b := blockingEndpoint{release: make(chan struct{})}
	defer close(b.release)
	const limit = 10 * localMessageCost
	ref, err := e.Register("slow", b, WithInboxLimit(limit))
	if err != nil {
		t.Fatal(err)
	}
	var full error
	sent := 0
	for range 100 {
		if full = ref.Send(1); full != nil {
			break
		}
		sent++
	}
	if !errors.Is(full, ErrInboxFull) {
		t.Fatalf("the 100th local send to an endpoint with room for 10: %v; want ErrInboxFull", full)
	}
	if sent > limit/localMessageCost {
		t.Errorf("%d local sends accepted; want at most %d", sent, limit/localMessageCost)
	}
	if e.DeadLetters() == 0 {
		t.Error("a send refused for a full inbox is not counted as a dead letter")
	}
	if _, err := ref.Ask(context.Background(), 2); !errors.Is(err, ErrInboxFull) {
		t.Errorf("a local ask to the full inbox: %v; want ErrInboxFull", err)
	}
	if _, err := e.Register("bad", b, WithInboxLimit(1)); err == nil {
		t.Error("WithInboxLimit(1) was accepted; want an error naming the minimum")
	}
}

// A send to an address in reconnect backoff must fail, not wait in an
// outbox that no connection will ever write.
func TestASendDuringReconnectBackoffFails(t *testing.T) {
	dropped := make(chan DeadLetter, 4)
	tr := nowhere{dialing: make(chan struct{})}
	e, err := NewEnv(Config{Name: "backoff", Transports: []Transport{tr}, OnDeadLetter: func(d DeadLetter) { dropped <- d }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	ref := newRef(e, "x", "nowhere://peer", "0123456789abcdef", "peer")
	if err := ref.Send(1); err != nil { // the dial waits for dialing: the send queues
		t.Fatalf("the first send (queued while connecting): %v", err)
	}
	close(tr.dialing) // now the dial fails
	<-dropped         // the connect failed: the queued send is a dead letter
	if err := ref.Send(2); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("a send during the backoff: %v; want ErrDisconnected at once", err)
	}
}

// nowhere is a transport whose every dial fails, once dialing is closed.
type nowhere struct{ dialing chan struct{} }

func (nowhere) Scheme() string { return "nowhere" }
func (nowhere) Listen(string, ConnOptions) (Listener, error) {
	return nil, errors.New("nowhere: no listening")
}
func (n nowhere) Dial(ctx context.Context, _ string, _ ConnOptions) (Conn, error) {
	select {
	case <-n.dialing:
	case <-ctx.Done():
	}
	return nil, errors.New("nowhere: connection refused")
}
