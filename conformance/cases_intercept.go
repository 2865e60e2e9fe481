package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// acrossIntercepted makes one case per topology, whose run builds its
// envs with mk: at, the endpoint's env, gets atCfg's edit, and from, the
// sender's, fromCfg's (in the same env, both).
func acrossIntercepted(name string, run func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (at, from *core.Env))) []testCase {
	tops := []struct {
		name string
		mk   func(h *harness, atCfg, fromCfg func(*core.Config)) (at, from *core.Env)
	}{
		{"SameEnv", func(h *harness, atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env) {
			e := h.server("solo", atCfg, fromCfg)
			return e, e
		}},
		{"Remote", func(h *harness, atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env) {
			return h.server("at", atCfg), h.server("from", fromCfg)
		}},
		{"FromClientMode", func(h *harness, atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env) {
			return h.server("at", atCfg), h.client("from", fromCfg)
		}},
	}
	var cs []testCase
	for _, top := range tops {
		cs = append(cs, testCase{name + "/" + top.name, func(t *testing.T, h *harness) {
			run(t, h, func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env) {
				none := func(*core.Config) {}
				if atCfg == nil {
					atCfg = none
				}
				if fromCfg == nil {
					fromCfg = none
				}
				return top.mk(h, atCfg, fromCfg)
			})
		}})
	}
	return cs
}

// recordOut is an outbound interceptor that records its name around next.
func recordOut(ev *events, name string) core.OutboundInterceptor {
	return func(ctx context.Context, call *core.Call, next core.Invoker) (any, error) {
		ev.add("%s > %s %s %T", name, call.Kind, call.Target.Name(), call.Message)
		v, err := next(ctx, call)
		ev.add("%s < %v", name, err)
		return v, err
	}
}

// recordIn is an inbound interceptor that records its name around next.
func recordIn(ev *events, name string) core.InboundInterceptor {
	return func(ctx context.Context, d *core.Delivery, next core.Handler) error {
		ev.add("%s > %s %s %T", name, d.Kind, d.Endpoint.Name(), d.Message)
		err := next(ctx, d)
		ev.add("%s < %v", name, err)
		return err
	}
}

// withPrefix returns the events starting with prefix, in order.
func withPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// ctxKey is a context key of the interceptor cases.
type ctxKey struct{}

var interceptCases = concat(
	acrossIntercepted("InterceptorsRunInOrderAroundEveryCall", func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env)) {
		ev := newEvents()
		at, from := mk(func(c *core.Config) {
			c.InboundInterceptors = []core.InboundInterceptor{recordIn(ev, "in1"), recordIn(ev, "in2")}
		}, func(c *core.Config) {
			c.OutboundInterceptors = []core.OutboundInterceptor{recordOut(ev, "out1"), recordOut(ev, "out2")}
		})
		h.register(at, "target", &probe{receive: func(c *core.Context, msg any) error {
			ev.add("receive %T", msg)
			if c.IsAsk() {
				return c.Reply(Pong{})
			}
			return nil
		}})
		ref := h.lookup(from, at, "target")
		if _, err := ask(t, ref, Ping{N: 1}); err != nil {
			t.Fatal(err)
		}
		ev.until(t, "in1 < <nil>")
		if err := ref.Send(Seq{N: 2}); err != nil {
			t.Fatal(err)
		}
		ev.until(t, "in1 < <nil>")
		list := ev.snapshot()
		wantOut := []string{
			"out1 > ask target conformance.Ping", "out2 > ask target conformance.Ping", "out2 < <nil>", "out1 < <nil>",
			"out1 > send target conformance.Seq", "out2 > send target conformance.Seq", "out2 < <nil>", "out1 < <nil>",
		}
		wantIn := []string{
			"in1 > ask target conformance.Ping", "in2 > ask target conformance.Ping", "receive conformance.Ping", "in2 < <nil>", "in1 < <nil>",
			"in1 > send target conformance.Seq", "in2 > send target conformance.Seq", "receive conformance.Seq", "in2 < <nil>", "in1 < <nil>",
		}
		if got := withPrefix(list, "out"); !slices.Equal(got, wantOut) {
			t.Errorf("outbound interceptors:\n got %q\nwant %q", got, wantOut)
		}
		var in []string
		for _, s := range list {
			if strings.HasPrefix(s, "in") || strings.HasPrefix(s, "receive") {
				in = append(in, s)
			}
		}
		if !slices.Equal(in, wantIn) {
			t.Errorf("inbound interceptors:\n got %q\nwant %q", in, wantIn)
		}
	}),
	acrossIntercepted("HeadersCrossToTheEndpoint", func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env)) {
		at, from := mk(nil, func(c *core.Config) {
			c.OutboundInterceptors = []core.OutboundInterceptor{func(ctx context.Context, call *core.Call, next core.Invoker) (any, error) {
				call.SetHeader("trace-id", fmt.Sprintf("%s-%T", call.Kind, call.Message))
				call.SetHeader("x.nobody-knows_this", "ignored") // no one reads it: it only travels
				return next(ctx, call)
			}}
		})
		got := make(chan map[string]string, 4)
		h.register(at, "target", &probe{receive: func(c *core.Context, msg any) error {
			got <- c.Headers()
			if c.IsAsk() {
				return c.Reply(c.Header("trace-id"))
			}
			return nil
		}})
		ref := h.lookup(from, at, "target")
		v, err := ask(t, ref, Ping{})
		if err != nil || v != "ask-conformance.Ping" {
			t.Fatalf("ask: %v, %v; want the trace-id header echoed", v, err)
		}
		want := map[string]string{"trace-id": "ask-conformance.Ping", "x.nobody-knows_this": "ignored"}
		if hd := recv(t, got, "the ask's headers"); !mapsEqual(hd, want) {
			t.Errorf("the ask's headers: %v, want %v", hd, want)
		}
		if err := ref.Send(Seq{}); err != nil {
			t.Fatal(err)
		}
		want = map[string]string{"trace-id": "send-conformance.Seq", "x.nobody-knows_this": "ignored"}
		if hd := recv(t, got, "the send's headers"); !mapsEqual(hd, want) {
			t.Errorf("the send's headers: %v, want %v", hd, want)
		}
		// A message large enough to cross in chunks keeps its headers (they
		// are in its envelope), and a small one sent while it is in flight
		// keeps its own.
		big := make(chan error, 1)
		go func() {
			_, err := ref.Ask(context.Background(), Blob{Data: make([]byte, 1<<20)})
			big <- err
		}()
		if v, err := ask(t, ref, Ping{}); err != nil || v != "ask-conformance.Ping" {
			t.Fatalf("an ask beside a 1 MiB one: %v, %v; want its own trace-id", v, err)
		}
		if err := recv(t, big, "the 1 MiB ask"); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for range 2 {
			seen[recv(t, got, "the headers of the asks")["trace-id"]] = true
		}
		if !seen["ask-conformance.Ping"] || !seen["ask-conformance.Blob"] {
			t.Errorf("trace-ids delivered: %v; want the Ping's and the 1 MiB Blob's", seen)
		}
	}),
	acrossIntercepted("HeadersBeyondTheLimitsFailTheCall", func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env)) {
		var set func(*core.Call)
		at, from := mk(nil, func(c *core.Config) {
			c.OutboundInterceptors = []core.OutboundInterceptor{func(ctx context.Context, call *core.Call, next core.Invoker) (any, error) {
				set(call)
				return next(ctx, call)
			}}
		})
		delivered := make(chan any, 8)
		h.register(at, "target", &probe{receive: func(c *core.Context, msg any) error {
			delivered <- msg
			return c.Reply(len(c.Headers()))
		}})
		ref := h.lookup(from, at, "target")
		bad := []struct {
			name string
			set  func(*core.Call)
		}{
			{"33 headers", func(c *core.Call) {
				for i := range 33 {
					c.SetHeader(fmt.Sprintf("h%d", i), "v")
				}
			}},
			{"an upper-case key", func(c *core.Call) { c.SetHeader("Trace", "v") }},
			{"an empty key", func(c *core.Call) { c.SetHeader("", "v") }},
			{"a key of 65 bytes", func(c *core.Call) { c.SetHeader(strings.Repeat("k", 65), "v") }},
			{"a value of 4097 bytes", func(c *core.Call) { c.SetHeader("k", strings.Repeat("v", 4097)) }},
			{"a value that is not UTF-8", func(c *core.Call) { c.SetHeader("k", "\xff") }},
			{"8193 bytes in all", func(c *core.Call) {
				for i := range 3 {
					c.SetHeader(fmt.Sprintf("k%d", i), strings.Repeat("v", 2729)) // 3 * (2 + 2729) = 8193
				}
			}},
		}
		for _, b := range bad {
			set = b.set
			if _, err := ask(t, ref, Ping{}); !errors.Is(err, core.ErrInvalidHeader) {
				t.Errorf("an ask with %s: %v; want ErrInvalidHeader", b.name, err)
			}
		}
		set = func(c *core.Call) { // at the limits
			for i := range 32 {
				c.SetHeader(fmt.Sprintf("%02d%s", i, strings.Repeat("k", 62)), strings.Repeat("v", 192)) // 32 * 256 = 8192
			}
		}
		if v, err := ask(t, ref, Ping{}); err != nil || v != 32 {
			t.Fatalf("an ask with 32 headers of 8192 bytes in all: %v, %v; want them all delivered", v, err)
		}
		if got := len(delivered); got != 1 {
			t.Fatalf("%d messages delivered; want only the one within the limits", got)
		}
	}),
	acrossIntercepted("InterceptorsCanFailTheCall", func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env)) {
		errOut, errIn := errors.New("refused on the way out"), errors.New("refused on the way in")
		at, from := mk(func(c *core.Config) {
			c.InboundInterceptors = []core.InboundInterceptor{func(ctx context.Context, d *core.Delivery, next core.Handler) error {
				if d.Message == (Ping{N: 2}) {
					return errIn
				}
				return next(ctx, d)
			}}
		}, func(c *core.Config) {
			c.OutboundInterceptors = []core.OutboundInterceptor{func(ctx context.Context, call *core.Call, next core.Invoker) (any, error) {
				if call.Message == (Ping{N: 1}) {
					return nil, errOut
				}
				return next(ctx, call)
			}}
		})
		delivered := make(chan any, 4)
		h.register(at, "target", &probe{receive: func(c *core.Context, msg any) error {
			delivered <- msg
			return c.Reply(Pong{})
		}})
		ref := h.lookup(from, at, "target")
		if _, err := ask(t, ref, Ping{N: 1}); !errors.Is(err, errOut) {
			t.Errorf("an ask the outbound interceptor refuses: %v; want its error", err)
		}
		if err := ref.Send(Ping{N: 1}); !errors.Is(err, errOut) {
			t.Errorf("a send the outbound interceptor refuses: %v; want its error", err)
		}
		_, err := ask(t, ref, Ping{N: 2})
		var re *core.RemoteError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), errIn.Error()) {
			t.Errorf("an ask the inbound interceptor refuses: %v; want a RemoteError with its message", err)
		}
		if _, err := ask(t, ref, Ping{N: 3}); err != nil {
			t.Fatalf("an ask both let through: %v", err)
		}
		if got := recv(t, delivered, "the ask let through"); got != (Ping{N: 3}) || len(delivered) != 0 {
			t.Fatalf("delivered %v (and %d more); want only Ping{3}", got, len(delivered))
		}
	}),
	acrossIntercepted("TheInboundContextReachesTheHandlerAndItsCalls", func(t *testing.T, h *harness, mk func(atCfg, fromCfg func(*core.Config)) (*core.Env, *core.Env)) {
		seen := make(chan any, 2)
		at, from := mk(func(c *core.Config) {
			c.InboundInterceptors = []core.InboundInterceptor{func(ctx context.Context, d *core.Delivery, next core.Handler) error {
				return next(context.WithValue(ctx, ctxKey{}, "from the interceptor"), d)
			}}
			c.OutboundInterceptors = []core.OutboundInterceptor{func(ctx context.Context, call *core.Call, next core.Invoker) (any, error) {
				if call.Target.Name() == "sink" {
					seen <- ctx.Value(ctxKey{})
				}
				return next(ctx, call)
			}}
		}, nil)
		sink := h.register(at, "sink", &probe{})
		h.register(at, "target", &probe{receive: func(c *core.Context, msg any) error {
			if got := c.Context().Value(ctxKey{}); got != "from the interceptor" {
				return fmt.Errorf("the handler's context has %v", got)
			}
			if err := sink.SendContext(c.Context(), Seq{}); err != nil {
				return err
			}
			return c.Reply(Pong{})
		}})
		if _, err := ask(t, h.lookup(from, at, "target"), Ping{}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, seen, "the send's context in the outbound interceptor"); got != "from the interceptor" {
			t.Fatalf("a send made with the handler's context carried %v", got)
		}
	}),
)

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
