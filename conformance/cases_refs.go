package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/rpcenv/rpcenv/core"
)

var notFoundCases = concat(
	across("AskToAStoppedEndpointFailsWithErrEndpointNotFound", all, func(t *testing.T, h *harness, at, from *core.Env) {
		local := h.register(at, "gone", echo())
		ref := h.lookup(from, at, "gone")
		if err := at.Stop(local); err != nil {
			t.Fatal(err)
		}
		_, err := ask(t, ref, Ping{})
		if !errors.Is(err, core.ErrEndpointNotFound) || !strings.Contains(err.Error(), ref.String()) {
			t.Fatalf("Ask to a stopped endpoint: %v; want ErrEndpointNotFound naming %s", err, ref)
		}
	}),
	across("SendToAStoppedEndpointIsADeadLetter", all, func(t *testing.T, h *harness, at, from *core.Env) {
		letters := make(chan core.DeadLetter, 1)
		if at == from {
			at = h.server("at", func(c *core.Config) { c.OnDeadLetter = func(d core.DeadLetter) { letters <- d } })
			from = at
		} else {
			at = h.server("at", func(c *core.Config) { c.OnDeadLetter = func(d core.DeadLetter) { letters <- d } })
		}
		local := h.register(at, "gone", echo())
		ref := h.lookup(from, at, "gone")
		if err := at.Stop(local); err != nil {
			t.Fatal(err)
		}
		before := at.DeadLetters()
		err := ref.Send(Ping{})
		if err != nil && !errors.Is(err, core.ErrEndpointNotFound) {
			t.Fatalf("Send to a stopped endpoint: %v", err)
		}
		d := recv(t, letters, "the dead letter")
		if d.Target != ref.String() || d.Type != "conformance.Ping" || !errors.Is(d.Reason, core.ErrEndpointNotFound) {
			t.Fatalf("dead letter %+v; want target %s, type conformance.Ping, reason ErrEndpointNotFound", d, ref)
		}
		if got := at.DeadLetters(); got != before+1 {
			t.Fatalf("DeadLetters() = %d, want %d", got, before+1)
		}
	}),
	across("SendToAnEnvThatIsGoneIsADeadLetterAtTheSender", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		letters := make(chan core.DeadLetter, 4)
		from = remake(h, from, "from", func(c *core.Config) { c.OnDeadLetter = func(d core.DeadLetter) { letters <- d } })
		lost := make(chan string, 1)
		h.register(from, "watch", &probe{disc: func(r string) { lost <- r }})
		h.register(at, "gone", echo())
		ref := h.lookup(from, at, "gone")
		h.shutdown(at)
		recv(t, lost, "OnDisconnected at the sender") // so the send cannot race the connection's end
		before := from.DeadLetters()
		if err := ref.Send(Ping{}); err != nil && !errors.Is(err, core.ErrDisconnected) {
			t.Fatalf("Send to an env that shut down: %v; want nil (queued) or ErrDisconnected", err)
		}
		d := recv(t, letters, "the dead letter at the sender")
		if d.Target != ref.String() || !errors.Is(d.Reason, core.ErrDisconnected) {
			t.Fatalf("dead letter %+v; want target %s and reason ErrDisconnected", d, ref)
		}
		if from.DeadLetters() <= before {
			t.Fatal("DeadLetters() did not grow")
		}
	}),
	across("LookupOfAMissingEndpointNamesTheURI", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		uri := at.Address() + "/nobody"
		_, err := from.Lookup(t.Context(), uri)
		if !errors.Is(err, core.ErrEndpointNotFound) || !strings.Contains(err.Error(), uri) {
			t.Fatalf("Lookup(%s): %v; want ErrEndpointNotFound naming the URI", uri, err)
		}
	}),
	[]testCase{
		{"LookupWithAnUnknownSchemeFails", func(t *testing.T, h *harness) {
			e := h.client("c")
			if _, err := e.Lookup(t.Context(), "nosuch://host:1/x"); !errors.Is(err, core.ErrUnknownScheme) {
				t.Fatalf("Lookup: %v, want ErrUnknownScheme", err)
			}
		}},
		{"LookupOfAnUnreachableEnvFailsWithErrDisconnectedAndANetworkError", func(t *testing.T, h *harness) {
			gone := h.server("gone")
			addr := gone.Address()
			h.shutdown(gone)
			netErrs := make(chan string, 1)
			e := h.client("c")
			h.register(e, "watch", &probe{netErr: func(remote string, err error) { netErrs <- remote }})
			_, err := e.Lookup(t.Context(), addr+"/x")
			if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("Lookup at a closed address: %v; want ErrDisconnected naming %s", err, addr)
			}
			if got := recv(t, netErrs, "OnNetworkError"); got != addr {
				t.Fatalf("OnNetworkError(%q), want %q", got, addr)
			}
		}},
	},
)

var refCases = concat(
	across("RefInsideAMessageIsUsableByTheReceiver", networks, func(t *testing.T, h *harness, driver, exec *core.Env) {
		// Spark's registration: the executor asks the driver with its own
		// ref inside; the driver keeps it and later sends it work.
		refs := make(chan *core.Ref, 1)
		h.register(driver, "driver", &probe{receive: func(c *core.Context, msg any) error {
			refs <- msg.(Carry).Ref
			return c.Reply(true)
		}})
		tasks := make(chan Ping, 1)
		execRef := h.register(exec, "executor", &probe{receive: func(c *core.Context, msg any) error {
			if c.IsAsk() {
				return c.Reply(Pong{N: msg.(Ping).N})
			}
			tasks <- msg.(Ping)
			return nil
		}})
		if _, err := ask(t, h.lookup(exec, driver, "driver"), Carry{Ref: execRef, Note: "register"}); err != nil {
			t.Fatalf("register: %v", err)
		}
		kept := recv(t, refs, "the executor's ref at the driver")
		if kept.String() != execRef.String() || kept.Address() != exec.Address() || kept.Name() != "executor" {
			t.Fatalf("the driver got ref %s (address %q), want %s", kept, kept.Address(), execRef)
		}
		if err := kept.Send(Ping{N: 7}); err != nil {
			t.Fatalf("driver Send to the executor's ref: %v", err)
		}
		if got := recv(t, tasks, "the task at the executor"); got.N != 7 {
			t.Fatalf("executor got %v", got)
		}
		if v, err := ask(t, kept, Ping{N: 8}); err != nil || v != (Pong{N: 8}) {
			t.Fatalf("driver Ask to the executor's ref = %v, %v", v, err)
		}
	}),
	across("RefMayBeTheMessageItself", all, func(t *testing.T, h *harness, at, from *core.Env) {
		got := make(chan any, 1)
		h.register(at, "keeper", &probe{receive: func(c *core.Context, msg any) error {
			got <- msg
			return nil
		}})
		mine := h.register(from, "mine", echo())
		if err := h.lookup(from, at, "keeper").Send(mine); err != nil {
			t.Fatal(err)
		}
		ref, ok := recv(t, got, "the ref").(*core.Ref)
		if !ok {
			t.Fatal("a *core.Ref message arrived as another type")
		}
		if v, err := ask(t, ref, Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Fatalf("Ask through the received ref = %v, %v", v, err)
		}
	}),
	across("RefsInUntypedValuesAreUsableOnArrival", all, func(t *testing.T, h *harness, at, from *core.Env) {
		// The receiver asks through the ref it finds, before it answers.
		h.register(at, "user", &probe{receive: func(c *core.Context, msg any) error {
			l := msg.(Loose)
			r, ok := l.at().(*core.Ref)
			if !ok {
				return fmt.Errorf("%s holds a %T, want a *core.Ref", l.Where, l.at())
			}
			ctx, cancel := context.WithTimeout(c.Context(), waitLimit)
			defer cancel()
			pong, err := r.Ask(ctx, Ping{N: len(l.Where)})
			if err != nil {
				return fmt.Errorf("ask through the ref in %s: %w", l.Where, err)
			}
			return c.Reply(pong)
		}})
		mine := h.register(from, "mine", echo())
		user := h.lookup(from, at, "user")
		for _, l := range []Loose{
			{Where: "Any", Any: mine},
			{Where: "Map", Map: map[string]any{"r": mine, "n": 1}},
			{Where: "List", List: []any{map[string]any{"r": mine}}},
			{Where: "Deep", Any: map[string]any{"l": []any{"x", []any{mine}}}},
		} {
			if v, err := ask(t, user, l); err != nil || v != (Pong{N: len(l.Where) + 1}) {
				t.Errorf("a ref in %s: the receiver's ask through it = %v, %v", l.Where, v, err)
			}
		}
	}),
	across("MalformedRefTagInAnUntypedValueFailsTheMessageNamingWhere", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		letters := make(chan core.DeadLetter, 1)
		at = h.server("at", func(c *core.Config) { c.OnDeadLetter = func(d core.DeadLetter) { letters <- d } })
		h.register(at, "echo", echo())
		ref := h.lookup(from, at, "echo")
		// A ref tag (62064) must hold [name, address, env id, env name].
		bad := Loose{Map: map[string]any{"r": cbor.Tag{Number: 62064, Content: []string{"only a name"}}}}
		_, err := ask(t, ref, bad)
		if !errors.Is(err, core.ErrProtocol) || !strings.Contains(err.Error(), `.Map["r"]`) || !strings.Contains(err.Error(), "62064") {
			t.Errorf("Ask with a malformed ref tag: %v; want ErrProtocol saying where (.Map[\"r\"]) and which tag", err)
		}
		if err := ref.Send(bad); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if d := recv(t, letters, "the dead letter"); !errors.Is(d.Reason, core.ErrProtocol) || !strings.Contains(d.Reason.Error(), `.Map["r"]`) {
			t.Errorf("dead letter %+v; want reason ErrProtocol saying where", d)
		}
		// The message failed, not the connection.
		if v, err := ask(t, ref, Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Errorf("Ask after the malformed ones = %v, %v", v, err)
		}
	}),
	[]testCase{
		{"ClientModeRefInAnUntypedFieldIsReachedOverItsConnection", func(t *testing.T, h *harness) {
			driver, exec := h.server("driver"), h.client("exec")
			refs := make(chan *core.Ref, 1)
			h.register(driver, "driver", &probe{receive: func(c *core.Context, msg any) error {
				r, ok := msg.(Loose).Any.(*core.Ref)
				if !ok {
					return fmt.Errorf("Any holds a %T, want a *core.Ref", msg.(Loose).Any)
				}
				refs <- r
				return c.Reply(true)
			}})
			tasks := make(chan Ping, 1)
			execRef := h.register(exec, "executor", &probe{receive: func(c *core.Context, msg any) error {
				if c.IsAsk() {
					return c.Reply(Pong{N: msg.(Ping).N + 1})
				}
				tasks <- msg.(Ping)
				return nil
			}})
			if _, err := ask(t, h.lookup(exec, driver, "driver"), Loose{Any: execRef}); err != nil {
				t.Fatalf("register: %v", err)
			}
			kept := recv(t, refs, "the client-mode ref at the driver")
			if kept.Address() != "" || kept.String() != execRef.String() || !kept.Equal(execRef) {
				t.Fatalf("the driver got %s (address %q), want %s", kept, kept.Address(), execRef)
			}
			if err := kept.Send(Ping{N: 7}); err != nil {
				t.Fatalf("driver Send through the client-mode ref: %v", err)
			}
			if got := recv(t, tasks, "the send at the executor"); got.N != 7 {
				t.Fatalf("the executor got %v", got)
			}
			if v, err := ask(t, kept, Ping{N: 8}); err != nil || v != (Pong{N: 9}) {
				t.Fatalf("driver Ask through the client-mode ref = %v, %v", v, err)
			}
		}},
		{"ClientModeRefFailsWithErrDisconnectedOnceItsConnectionIsGone", func(t *testing.T, h *harness) {
			driver, exec := h.server("driver"), h.client("exec")
			refs := make(chan *core.Ref, 1)
			lost := make(chan string, 1)
			h.register(driver, "driver", &probe{
				receive: func(c *core.Context, msg any) error {
					refs <- msg.(Carry).Ref
					return c.Reply(true)
				},
				disc: func(remote string) { lost <- remote },
			})
			execRef := h.register(exec, "executor", echo())
			if execRef.Address() != "" {
				t.Fatalf("a client-mode env's ref has address %q, want \"\"", execRef.Address())
			}
			if _, err := ask(t, h.lookup(exec, driver, "driver"), Carry{Ref: execRef}); err != nil {
				t.Fatal(err)
			}
			kept := recv(t, refs, "the client-mode ref")
			if !strings.Contains(kept.String(), "executor") {
				t.Fatalf("client-mode ref prints as %q; it should name the endpoint", kept)
			}
			h.wire.sever()
			recv(t, lost, "OnDisconnected at the driver")
			if err := kept.Send(Ping{}); !errors.Is(err, core.ErrDisconnected) {
				t.Fatalf("Send to a client-mode ref without a connection: %v, want ErrDisconnected", err)
			}
			if _, err := ask(t, kept, Ping{}); !errors.Is(err, core.ErrDisconnected) {
				t.Fatalf("Ask to a client-mode ref without a connection: %v, want ErrDisconnected", err)
			}
		}},
		{"RefPassedOnToAThirdEnvReachesItsEndpoint", func(t *testing.T, h *harness) {
			a, b, c := h.server("a"), h.server("b"), h.client("c")
			aRef := h.register(a, "svc", echo())
			refs := make(chan *core.Ref, 1)
			cSink := h.register(c, "sink", &probe{receive: func(_ *core.Context, msg any) error {
				refs <- msg.(Carry).Ref
				return nil
			}})
			// b relays whatever it gets to c's sink.
			sink := make(chan *core.Ref, 1)
			h.register(b, "relay", &probe{receive: func(ctx *core.Context, msg any) error {
				if r, ok := msg.(*core.Ref); ok {
					sink <- r
					return ctx.Reply(true)
				}
				return (<-sink).Send(msg)
			}})
			relay := h.lookup(c, b, "relay")
			if _, err := ask(t, relay, cSink); err != nil {
				t.Fatal(err)
			}
			if err := h.lookup(a, b, "relay").Send(Carry{Ref: aRef}); err != nil {
				t.Fatal(err)
			}
			got := recv(t, refs, "a's ref at c")
			if v, err := ask(t, got, Ping{N: 4}); err != nil || v != (Pong{N: 5}) {
				t.Fatalf("c's Ask to a's endpoint through a relayed ref = %v, %v", v, err)
			}
		}},
	},
)

// at is the value of l where l.Where says a ref is. A map inside an
// untyped value decodes as a map[any]any; delivered within one env, it is
// still the map[string]any that was sent.
func (l Loose) at() any {
	switch l.Where {
	case "Any":
		return l.Any
	case "Map":
		return l.Map["r"]
	case "List":
		if len(l.List) == 1 {
			return key(l.List[0], "r")
		}
	case "Deep":
		if s, ok := key(l.Any, "l").([]any); ok && len(s) == 2 {
			if s, ok := s[1].([]any); ok && len(s) == 1 {
				return s[0]
			}
		}
	}
	return nil
}

// key is m[k] for a map[string]any or a map[any]any m, or nil.
func key(m any, k string) any {
	switch m := m.(type) {
	case map[string]any:
		return m[k]
	case map[any]any:
		return m[k]
	}
	return nil
}

// builtins are values of every built-in type, which need no registration.
func builtins() []any {
	return []any{
		"hello", "", true, false,
		int(-1), int8(-8), int16(-16), int32(-32), int64(-1 << 62),
		uint(1), uint8(8), uint16(16), uint32(32), uint64(1 << 63),
		float32(1.5), float64(-2.25),
		[]byte{0, 1, 2, 255},
		time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.FixedZone("X", 3600)),
		nil,
	}
}

var typeCases = concat(
	across("BuiltinTypesArriveAsTheSameTypeAndValue", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "echo", echo())
		ref := h.lookup(from, at, "echo")
		for _, v := range builtins() {
			got, err := ask(t, ref, v)
			if err != nil {
				t.Errorf("Ask(%T %v): %v", v, v, err)
				continue
			}
			if reflect.TypeOf(got) != reflect.TypeOf(v) {
				t.Errorf("%T %v came back as %T %v", v, v, got, got)
				continue
			}
			switch w := v.(type) {
			case time.Time:
				if !got.(time.Time).Equal(w) {
					t.Errorf("time %v came back as %v", w, got)
				}
			case []byte:
				if !bytes.Equal(got.([]byte), w) {
					t.Errorf("bytes %v came back as %v", w, got)
				}
			default:
				if got != v {
					t.Errorf("%T %v came back as %v", v, v, got)
				}
			}
		}
	}),
	across("RegisteredTypeArrivesAsValueOrPointerAsSent", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "mirror", &probe{receive: func(c *core.Context, msg any) error { return c.Reply(msg) }})
		ref := h.lookup(from, at, "mirror")
		if v, err := ask(t, ref, Seq{Sender: 1, N: 2}); err != nil || v != (Seq{Sender: 1, N: 2}) {
			t.Errorf("a Seq value came back as %#v, %v", v, err)
		}
		v, err := ask(t, ref, &Seq{Sender: 3, N: 4})
		if p, ok := v.(*Seq); err != nil || !ok || *p != (Seq{Sender: 3, N: 4}) {
			t.Errorf("a *Seq came back as %#v, %v", v, err)
		}
	}),
	across("UnregisteredTypeFailsTheSameWayEverywhere", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "echo", echo())
		ref := h.lookup(from, at, "echo")
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, core.ErrUnregisteredType) || !strings.Contains(err.Error(), "conformance.Unregistered") || !strings.Contains(err.Error(), "core.RegisterMessage") {
				t.Errorf("%s of an unregistered type: %v; want ErrUnregisteredType naming the type and core.RegisterMessage", op, err)
			}
		}
		check("Send", ref.Send(Unregistered{X: 1}))
		_, err := ask(t, ref, Unregistered{X: 1})
		check("Ask", err)
	}),
	across("ReplyOfAnUnregisteredTypeFailsTheAsk", all, func(t *testing.T, h *harness, at, from *core.Env) {
		replyErrs := make(chan error, 1)
		h.register(at, "odd", &probe{receive: func(c *core.Context, _ any) error {
			replyErrs <- c.Reply(Unregistered{})
			return nil
		}})
		_, err := ask(t, h.lookup(from, at, "odd"), Ping{})
		if !errors.Is(err, core.ErrUnregisteredType) {
			t.Errorf("Ask answered with an unregistered type: %v, want ErrUnregisteredType", err)
		}
		if err := recv(t, replyErrs, "Reply's error"); !errors.Is(err, core.ErrUnregisteredType) {
			t.Errorf("Reply of an unregistered type returned %v, want ErrUnregisteredType", err)
		}
	}),
)
