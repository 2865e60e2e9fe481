package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

func limit(n int) func(*core.Config) { return func(c *core.Config) { c.MaxMessageSize = n } }

func secret(s []byte) func(*core.Config) { return func(c *core.Config) { c.Secret = s } }

// remake returns a fresh env in from's mode with edit applied.
func remake(h *harness, from *core.Env, name string, edit ...func(*core.Config)) *core.Env {
	if from.Address() == "" {
		return h.client(name, edit...)
	}
	return h.server(name, edit...)
}

var limitCases = concat(
	across("SenderRejectsAMessageOverMaxMessageSize", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		from = remake(h, from, "small", limit(1024))
		h.register(at, "echo", echo())
		ref := h.lookup(from, at, "echo")
		big := Blob{Data: make([]byte, 4096)}
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, core.ErrMessageTooLarge) || !strings.Contains(err.Error(), "Config.MaxMessageSize") {
				t.Errorf("%s of 4 KiB with a 1 KiB limit: %v; want ErrMessageTooLarge naming Config.MaxMessageSize", op, err)
			}
		}
		check("Send", ref.Send(big))
		_, err := ask(t, ref, big)
		check("Ask", err)
		if v, err := ask(t, ref, Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Fatalf("a small Ask after the rejected ones = %v, %v", v, err)
		}
	}),
	across("ReplyOverMaxMessageSizeFailsTheAsk", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		at = h.server("small", limit(1024))
		replyErrs := make(chan error, 1)
		h.register(at, "big", &probe{receive: func(c *core.Context, _ any) error {
			replyErrs <- c.Reply(Blob{Data: make([]byte, 4096)})
			return nil
		}})
		_, err := ask(t, h.lookup(from, at, "big"), Ping{})
		if !errors.Is(err, core.ErrMessageTooLarge) {
			t.Errorf("Ask answered with a reply over the limit: %v, want ErrMessageTooLarge", err)
		}
		if err := recv(t, replyErrs, "Reply's error"); !errors.Is(err, core.ErrMessageTooLarge) {
			t.Errorf("Reply over the limit returned %v, want ErrMessageTooLarge", err)
		}
	}),
	across("ReceiverClosesTheConnectionOnAFrameOverItsLimit", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		at = h.server("small", limit(1024))
		var got atomic.Int32
		h.register(at, "echo", &probe{receive: func(c *core.Context, msg any) error {
			if _, big := msg.(Blob); big {
				got.Add(1)
			}
			return c.Reply(msg)
		}})
		ref := h.lookup(from, at, "echo")
		_, err := ask(t, ref, Blob{Data: make([]byte, 4096)})
		if !errors.Is(err, core.ErrDisconnected) {
			t.Fatalf("Ask with a frame over the receiver's limit: %v, want ErrDisconnected", err)
		}
		if got.Load() != 0 {
			t.Fatal("the endpoint received a message over its env's limit")
		}
		if v, err := ask(t, ref, Ping{N: 1}); err != nil || v != (Ping{N: 1}) {
			t.Fatalf("a small Ask after the connection was closed = %v, %v; want a new connection", v, err)
		}
	}),
)

var secretCases = concat(
	across("SameSecretConnects", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		s := []byte("correct horse battery staple")
		at, from = h.server("at", secret(s)), remake(h, from, "from", secret(s))
		h.register(at, "echo", echo())
		if v, err := ask(t, h.lookup(from, at, "echo"), Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Fatalf("Ask with the same secret = %v, %v", v, err)
		}
	}),
	across("AnotherSecretIsRefusedBeforeAnyMessage", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		for _, tc := range []struct {
			name       string
			atS, fromS []byte
		}{
			{"different", []byte("secret one"), []byte("secret two")},
			{"dialer has none", []byte("secret one"), nil},
			{"listener has none", nil, []byte("secret two")},
		} {
			a := h.server("at", secret(tc.atS))
			f := remake(h, from, "from", secret(tc.fromS))
			var got atomic.Int32
			h.register(a, "echo", &probe{receive: func(*core.Context, any) error { got.Add(1); return nil }})
			_, err := f.Lookup(t.Context(), a.Address()+"/echo")
			if !errors.Is(err, core.ErrUnauthenticated) {
				t.Errorf("%s: Lookup: %v, want ErrUnauthenticated", tc.name, err)
			}
			if got.Load() != 0 {
				t.Errorf("%s: a message reached the endpoint", tc.name)
			}
		}
	}),
	[]testCase{
		{"TheSecretNeverCrossesTheWire", func(t *testing.T, h *harness) {
			s := make([]byte, 32)
			rand.Read(s)
			h.wire.startRecording()
			at, from := h.server("at", secret(s)), h.client("from", secret(s))
			h.register(at, "echo", echo())
			if _, err := ask(t, h.lookup(from, at, "echo"), Ping{}); err != nil {
				t.Fatal(err)
			}
			frames := h.wire.recorded()
			if len(frames) < 4 {
				t.Fatalf("recorded %d frames; the wrapper saw no traffic", len(frames))
			}
			for _, f := range frames {
				if bytes.Contains(f, s) {
					t.Fatal("a frame contains the secret")
				}
			}
		}},
		{"FramesAreSealedWithoutTLS", func(t *testing.T, h *harness) {
			marker := "a message no one else may read: " + rand.Text()
			for _, s := range [][]byte{nil, []byte("correct horse battery staple")} {
				at, from := h.server("at", secret(s)), h.client("from", secret(s))
				h.register(at, "echo", &probe{receive: func(c *core.Context, msg any) error { return c.Reply(msg) }})
				ref := h.lookup(from, at, "echo")
				before := len(h.wire.recorded())
				h.wire.startRecording()
				if v, err := ask(t, ref, marker); err != nil || v != marker {
					t.Fatalf("secret %q: Ask = %v, %v; want the marker back", s, v, err)
				}
				seen := false
				for _, f := range h.wire.recorded()[before:] {
					seen = seen || bytes.Contains(f, []byte(marker))
				}
				switch {
				case s == nil && !seen && !h.wire.transportEncrypts():
					t.Fatal("without a secret the recorder saw no message bytes: this case can show nothing")
				case s != nil && h.wire.transportEncrypts():
					t.Skip("the transport encrypts (TLS): rpcenv does not seal its frames")
				case s != nil && seen:
					t.Fatal("with a secret, a message crossed the wire in plain text")
				}
			}
		}},
		{"LargeMessagesCrossSealedBesideSmallOnes", func(t *testing.T, h *harness) {
			// Chunks, sealed, taking turns with small asks on the same
			// connection, both ways.
			s := []byte("correct horse battery staple")
			at, from := h.server("at", secret(s)), h.client("from", secret(s))
			h.register(at, "echo", &probe{receive: func(c *core.Context, msg any) error { return c.Reply(msg) }})
			ref := h.lookup(from, at, "echo")
			big := Blob{Data: pattern(3<<20, 7)}
			done := askLater(t.Context(), ref, big)
			for i := range 20 {
				if v, err := ask(t, ref, Ping{N: i}); err != nil || v != (Ping{N: i}) {
					t.Fatalf("small ask %d beside a large one: %v, %v", i, v, err)
				}
			}
			if err := recv(t, done, "the large ask"); err != nil {
				t.Fatalf("a 3 MiB ask over a sealed connection: %v", err)
			}
			v, err := ask(t, ref, big)
			if got, ok := v.(Blob); err != nil || !ok || !bytes.Equal(got.Data, big.Data) {
				t.Fatalf("a 3 MiB ask over a sealed connection came back %T (%v), equal %v", v, err, ok && bytes.Equal(got.Data, big.Data))
			}
		}},
		{"AnAlteredSealedFrameClosesTheConnection", testAlteredFrames},
		{"InsecurePlaintextMustBeSetOnBothEnds", func(t *testing.T, h *harness) {
			s := []byte("correct horse battery staple")
			plain := func(c *core.Config) { c.Secret, c.InsecurePlaintext = s, true }
			marker := "readable on the wire: " + rand.Text()
			at, from := h.server("at", plain), h.client("from", plain)
			h.register(at, "echo", &probe{receive: func(c *core.Context, msg any) error { return c.Reply(msg) }})
			ref := h.lookup(from, at, "echo")
			encrypts := h.wire.transportEncrypts()
			before := len(h.wire.recorded())
			h.wire.startRecording()
			if v, err := ask(t, ref, marker); err != nil || v != marker {
				t.Fatalf("both ends InsecurePlaintext: Ask = %v, %v", v, err)
			}
			seen := false
			for _, f := range h.wire.recorded()[before:] {
				seen = seen || bytes.Contains(f, []byte(marker))
			}
			if !encrypts && !seen {
				t.Fatal("both ends InsecurePlaintext: the message did not cross in plain text")
			}
			// One end encrypts, the other not: refused, unless the
			// transport encrypts (TLS), where the setting changes nothing.
			a := h.server("at", secret(s))
			f := remake(h, from, "from", plain)
			h.register(a, "echo", echo())
			_, err := f.Lookup(t.Context(), a.Address()+"/echo")
			switch {
			case encrypts && err != nil:
				t.Fatalf("over TLS, InsecurePlaintext on one end: Lookup: %v, want it to work", err)
			case !encrypts && (!errors.Is(err, core.ErrUnauthenticated) || !strings.Contains(err.Error(), "InsecurePlaintext")):
				t.Fatalf("InsecurePlaintext on one end only: Lookup: %v, want ErrUnauthenticated naming Config.InsecurePlaintext", err)
			}
		}},
	},
)

// testAlteredFrames alters the sealed frames of two messages on their way
// in (a byte flipped, a frame replayed, dropped, swapped with the next or
// cut short) and checks that the receiving env closes the connection as
// a protocol violation at the first frame that does not open, delivering
// nothing of it: only a replay, whose original is intact, delivers the
// first message, once.
func testAlteredFrames(t *testing.T, h *harness) {
	const big = 1000 // the messages' frames are the only ones this large
	flip := func(at func(n int) int) func(f []byte, held *[][]byte) [][]byte {
		return func(f []byte, _ *[][]byte) [][]byte { f[at(len(f))] ^= 0x20; return [][]byte{f} }
	}
	// sends is how many messages a case sends: one, when the first one's
	// frame closes the connection (a second could go over the next
	// connection), two when the second one's frame is the one that does
	// not open.
	cases := []struct {
		name  string
		alter func(f []byte, held *[][]byte) [][]byte // applied to the large frames
		sends int
		want  int // messages delivered
	}{
		{"first byte flipped", flip(func(int) int { return 0 }), 1, 0},
		{"middle byte flipped", flip(func(n int) int { return n / 2 }), 1, 0},
		{"last byte of the tag flipped", flip(func(n int) int { return n - 1 }), 1, 0},
		{"replayed", func(f []byte, _ *[][]byte) [][]byte { return [][]byte{f, append([]byte(nil), f...)} }, 1, 1},
		{"dropped", func(f []byte, held *[][]byte) [][]byte {
			if len(*held) == 0 {
				*held = append(*held, f)
				return nil
			}
			return [][]byte{f}
		}, 2, 0},
		{"swapped with the next", func(f []byte, held *[][]byte) [][]byte {
			if len(*held) == 0 {
				*held = append(*held, f)
				return nil
			}
			return [][]byte{f, (*held)[0]}
		}, 2, 0},
		{"cut short", func(f []byte, _ *[][]byte) [][]byte { return [][]byte{f[:len(f)-1]} }, 1, 0},
	}
	defer h.wire.alter.Store(nil)
	for _, c := range cases {
		s := []byte("correct horse battery staple")
		at, from := h.server("at", secret(s)), h.client("from", secret(s))
		got := make(chan string, 4)
		netErr := make(chan error, 4)
		ref := h.register(at, "sink", &probe{
			receive: func(ctx *core.Context, msg any) error {
				if ctx.IsAsk() {
					return ctx.Reply(msg) // the sync below
				}
				got <- msg.(string)
				return nil
			},
			netErr: func(_ string, err error) { netErr <- err },
		})
		// The hook is in place before the connection opens, so that it
		// sees every frame (a read loop already waiting for a frame
		// would pass the next one on unaltered); it lets the small ones
		// through.
		var held [][]byte
		alter := func(f []byte) [][]byte {
			if len(f) < big {
				return [][]byte{f}
			}
			return c.alter(f, &held)
		}
		h.wire.alter.Store(&alter)
		remote := h.lookup(from, at, "sink")
		if h.wire.transportEncrypts() {
			h.wire.alter.Store(nil)
			t.Skip("the transport encrypts (TLS): rpcenv does not seal its frames, and what this wrapper alters is below TLS")
		}
		for i := range c.sends {
			if err := remote.Send(fmt.Sprintf("message %d %s", i, strings.Repeat(".", big))); err != nil {
				t.Fatalf("%s: Send %d: %v", c.name, i, err)
			}
		}
		if err := recv(t, netErr, c.name+": the receiver's protocol error"); !errors.Is(err, core.ErrProtocol) {
			t.Errorf("%s: the receiver closed the connection with %v, want an error wrapping ErrProtocol", c.name, err)
		}
		h.wire.alter.Store(nil)
		if _, err := ask(t, ref, "sync"); err != nil { // the inbox has handled all it got before this
			t.Fatal(err)
		}
		if n := len(got); n != c.want {
			t.Errorf("%s: %d messages delivered, want %d", c.name, n, c.want)
		}
		for range len(got) {
			if m := <-got; !strings.HasPrefix(m, "message 0 ") {
				t.Errorf("%s: delivered %.12q..., want only message 0", c.name, m)
			}
		}
	}
}

var networkCases = concat(
	across("ObserversSeeConnectedAndDisconnected", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		atEv, fromEv := newEvents(), newEvents()
		h.register(at, "watch", &probe{
			receive: func(c *core.Context, msg any) error {
				atEv.add("msg from %s", c.Sender())
				return c.Reply(true)
			},
			conn: func(r string) { atEv.add("connected %s", r) },
			disc: func(r string) { atEv.add("disconnected %s", r) },
		})
		h.register(from, "watch", &probe{
			conn: func(r string) { fromEv.add("connected %s", r) },
			disc: func(r string) { fromEv.add("disconnected %s", r) },
		})
		if _, err := ask(t, h.lookup(from, at, "watch"), Ping{}); err != nil {
			t.Fatal(err)
		}
		first := atEv.next(t, "the listener's first event")
		label, ok := strings.CutPrefix(first, "connected ")
		if !ok {
			t.Fatalf("the listener's first event is %q, want OnConnected before any message", first)
		}
		if from.Address() != "" && label != from.Address() {
			t.Errorf("OnConnected(%q) at the listener, want the dialer's address %q", label, from.Address())
		}
		if got := atEv.next(t, "the message"); got != "msg from "+label {
			t.Errorf("after OnConnected(%s) the listener saw %q, want the message from the same remote", label, got)
		}
		if got := fromEv.next(t, "the dialer's OnConnected"); got != "connected "+at.Address() {
			t.Errorf("dialer's event %q, want OnConnected(%s)", got, at.Address())
		}
		h.wire.sever()
		if got := atEv.next(t, "the listener's OnDisconnected"); got != "disconnected "+label {
			t.Errorf("listener's event %q, want OnDisconnected(%s)", got, label)
		}
		if got := fromEv.next(t, "the dialer's OnDisconnected"); got != "disconnected "+at.Address() {
			t.Errorf("dialer's event %q, want OnDisconnected(%s)", got, at.Address())
		}
	}),
	across("OwnShutdownFiresNoOnDisconnected", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		atEv, fromEv := newEvents(), newEvents()
		h.register(at, "watch", &probe{
			conn: func(r string) { atEv.add("connected") },
			disc: func(r string) { atEv.add("disconnected") },
			stop: func() { atEv.add("stop") },
		})
		h.register(from, "watch", &probe{
			conn: func(r string) { fromEv.add("connected") },
			disc: func(r string) { fromEv.add("disconnected") },
			stop: func() { fromEv.add("stop") },
		})
		h.lookup(from, at, "watch")
		fromEv.until(t, "connected")
		atEv.until(t, "connected")
		h.shutdown(from)
		if got := fromEv.until(t, "stop"); len(got) != 0 {
			t.Errorf("the env shutting down saw %q before its OnStop; its own shutdown is not a disconnect", got)
		}
		atEv.until(t, "disconnected") // the peer did lose it
		select {
		case ev := <-fromEv.ch:
			t.Errorf("event %q after OnStop", ev)
		default:
		}
	}),
)

var shutdownCases = concat(
	[]testCase{
		{"StopsEveryEndpointOnceAndClosesDone", func(t *testing.T, h *harness) {
			e := h.server("e")
			var stops [3]atomic.Int32
			for i := range stops {
				h.register(e, string(rune('a'+i)), &probe{stop: func() { stops[i].Add(1) }})
			}
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			closed(t, e.Done(), "Done")
			if err := e.Shutdown(t.Context()); err != nil {
				t.Fatalf("second Shutdown: %v", err)
			}
			for i := range stops {
				if n := stops[i].Load(); n != 1 {
					t.Errorf("OnStop of endpoint %d ran %d times, want once", i, n)
				}
			}
		}},
		// Close: the hard stage from the start. It returns while a
		// handler is stuck; what was queued behind that handler is
		// dropped (asks fail, sends are dead letters); OnStop runs once
		// the handler returns, and then Done closes.
		{"CloseEndsAtOnceAndDropsWhatIsQueued", func(t *testing.T, h *harness) {
			var dead atomic.Int32
			e := h.newEnv(core.Config{Name: "e", OnDeadLetter: func(core.DeadLetter) { dead.Add(1) }}, nil)
			inside, release, stopped := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var handled atomic.Int32
			ref := h.register(e, "hang", &probe{
				receive: func(c *core.Context, _ any) error {
					if handled.Add(1) == 1 {
						close(inside)
						<-release
					}
					return nil
				},
				stop: func() { close(stopped) },
			})
			first := askLater(context.Background(), ref, Ping{})
			closed(t, inside, "the first ask to reach the handler")
			var queued []<-chan error
			for range 3 {
				queued = append(queued, askLater(context.Background(), ref, Ping{}))
			}
			for range 5 {
				if err := ref.Send(Ping{}); err != nil {
					t.Fatalf("Send: %v", err)
				}
			}
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			for _, ch := range queued {
				if err := recv(t, ch, "a queued ask to fail"); !errors.Is(err, core.ErrEnvStopped) {
					t.Errorf("ask queued at Close: %v, want ErrEnvStopped", err)
				}
			}
			if err := ref.Send(Ping{}); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("Send after Close: %v, want ErrEnvStopped", err)
			}
			select {
			case <-e.Done():
				t.Fatal("Done closed while a handler is still running")
			case <-stopped:
				t.Fatal("OnStop ran while Receive was still running")
			default:
			}
			if err := recv(t, first, "the ask being handled"); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("local ask being handled at Close: %v, want ErrEnvStopped", err)
			}
			close(release)
			closed(t, stopped, "OnStop after the handler returned")
			closed(t, e.Done(), "Done")
			if n := handled.Load(); n != 1 {
				t.Errorf("Receive ran %d times; want 1: what was queued at Close is dropped", n)
			}
			if n := dead.Load(); n != 5 {
				t.Errorf("%d dead letters; want the 5 sends queued at Close", n)
			}
		}},
		{"AfterShutdownEverythingReturnsErrEnvStopped", func(t *testing.T, h *harness) {
			e := h.server("e")
			ref := h.register(e, "x", echo())
			addr := e.Address()
			h.shutdown(e)
			if _, err := e.Register("y", echo()); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("Register: %v", err)
			}
			if err := ref.Send(Ping{}); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("Send: %v", err)
			}
			if _, err := ask(t, ref, Ping{}); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("Ask: %v", err)
			}
			if _, err := e.Lookup(t.Context(), addr+"/x"); !errors.Is(err, core.ErrEnvStopped) {
				t.Errorf("Lookup: %v", err)
			}
		}},
	},
	across("PendingAsksFailWithErrEnvStopped", all, func(t *testing.T, h *harness, at, from *core.Env) {
		inside := make(chan struct{})
		release := make(chan struct{})
		h.register(at, "hang", &probe{receive: func(c *core.Context, _ any) error {
			close(inside)
			<-release
			return nil
		}})
		ref := h.lookup(from, at, "hang")
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		errs := askLater(ctx, ref, Ping{})
		closed(t, inside, "the ask to reach the handler")
		shut := make(chan error, 1)
		go func() { shut <- from.Shutdown(context.Background()) }()
		if err := recv(t, errs, "the pending ask to fail"); !errors.Is(err, core.ErrEnvStopped) {
			t.Errorf("pending Ask at Shutdown: %v, want ErrEnvStopped", err)
		}
		close(release)
		if err := recv(t, shut, "Shutdown"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}),
	// Shutdown's graceful stage: the endpoints finish what they handle,
	// and what they answer goes out before the connections close. Here
	// the answer is 8 MiB, which crosses in chunks over many
	// connection-window round trips, long after the endpoint stopped.
	across("GracefulShutdownDeliversTheAnswersOfWhatItHandles", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		inside, release, stopping := make(chan struct{}), make(chan struct{}), make(chan struct{})
		big := pattern(8<<20, 5)
		h.register(at, "slow", &probe{receive: func(c *core.Context, msg any) error {
			close(inside)
			<-release
			return c.Reply(Blob{Data: big})
		}})
		// An idle endpoint runs OnStop as soon as Shutdown begins.
		h.register(at, "marker", &probe{stop: func() { close(stopping) }})
		ref := h.lookup(from, at, "slow")
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		answer := make(chan error, 1)
		go func() {
			v, err := ref.Ask(ctx, Ping{})
			if err == nil && !bytes.Equal(v.(Blob).Data, big) {
				err = errors.New("the 8 MiB answer arrived altered")
			}
			answer <- err
		}()
		closed(t, inside, "the ask to reach the handler")
		shut := make(chan error, 1)
		go func() { shut <- at.Shutdown(ctx) }()
		closed(t, stopping, "Shutdown to begin")
		close(release)
		if err := recv(t, answer, "the answer of the ask being handled"); err != nil {
			t.Errorf("the ask being handled when Shutdown began: %v; want its 8 MiB answer", err)
		}
		if err := recv(t, shut, "Shutdown"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}),
	// Shutdown's hard stage: once its context ends, the connections
	// close although a handler never returns, so the remote askers fail
	// at once (not at their deadlines) and a handler waiting on its
	// ask's Context is released; Done waits for the handler that holds.
	across("HardStageFailsRemoteAsksAndCancelsTheirHandlers", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		hangIn, waitIn := make(chan struct{}), make(chan struct{})
		release := make(chan struct{})
		canceled := make(chan error, 1)
		h.register(at, "hang", &probe{receive: func(c *core.Context, _ any) error {
			close(hangIn)
			<-release // ignores its Context: code that never returns
			return nil
		}})
		h.register(at, "wait", &probe{receive: func(c *core.Context, _ any) error {
			close(waitIn)
			<-c.Context().Done()
			canceled <- c.Context().Err()
			return c.Context().Err()
		}})
		hang, wait := h.lookup(from, at, "hang"), h.lookup(from, at, "wait")
		// No deadline of the caller's: the ask would wait AskTimeout.
		hangErr := askLater(context.Background(), hang, Ping{})
		waitErr := askLater(context.Background(), wait, Ping{})
		closed(t, hangIn, "the ask to reach the handler that hangs")
		closed(t, waitIn, "the ask to reach the handler that waits on its Context")

		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the graceful stage is over at once
		if err := at.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown with a handler that never returns: %v, want context.Canceled", err)
		}
		for _, ch := range []<-chan error{hangErr, waitErr} {
			if err := recv(t, ch, "the remote ask to fail"); !errors.Is(err, core.ErrDisconnected) {
				t.Errorf("remote ask after the hard stage: %v, want ErrDisconnected", err)
			}
		}
		if err := recv(t, canceled, "the handler's Context to end"); err == nil {
			t.Error("the handler's Context ended with a nil error")
		}
		select {
		case <-at.Done():
			t.Fatal("Done closed while a handler is still running")
		default:
		}
		close(release)
		closed(t, at.Done(), "Done once the handler returned")
	}),
)
