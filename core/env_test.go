package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

type shared struct{ Hits int }

func init() { core.RegisterMessage[shared]("coretest.shared") }

// TestSameEnvDeliveryPassesTheValueItself: a message to an endpoint of the
// same env is not encoded, so a pointer arrives as the same pointer.
func TestSameEnvDeliveryPassesTheValueItself(t *testing.T) {
	e, err := core.NewEnv(core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	got := make(chan *shared, 1)
	ref, err := e.Register("x", endpointFunc(func(c *core.Context, msg any) error {
		got <- msg.(*shared)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	sent := &shared{}
	if err := ref.Send(sent); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != sent {
		t.Fatal("the endpoint got a copy: same-env delivery encoded the message")
	}
}

func TestRegisterMessageRefusesConflicts(t *testing.T) {
	type a struct{}
	type b struct{}
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	core.RegisterMessage[a]("coretest.a")
	core.RegisterMessage[a]("coretest.a") // the same registration again is fine
	mustPanic("a name taken by another type", func() { core.RegisterMessage[b]("coretest.a") })
	mustPanic("a type under a second name", func() { core.RegisterMessage[a]("coretest.a2") })
	mustPanic("a built-in name", func() { core.RegisterMessage[b]("string") })
	mustPanic("a reserved name", func() { core.RegisterMessage[b]("rpcenv.b") })
	mustPanic("an empty name", func() { core.RegisterMessage[b]("") })
	mustPanic("a pointer type", func() { core.RegisterMessage[*b]("coretest.pb") })
}

func TestNewEnvRejectsBadConfig(t *testing.T) {
	ns := inproc.New()
	for _, tc := range []struct {
		name string
		cfg  core.Config
		want string
	}{
		{"negative timeout", core.Config{AskTimeout: -1}, "AskTimeout"},
		{"negative size", core.Config{MaxMessageSize: -1}, "MaxMessageSize"},
		{"unknown listen scheme", core.Config{Listen: "tcp://127.0.0.1:0"}, "unknown URI scheme"},
		{"listen with a path", core.Config{Listen: "inproc://a/b", Transports: []core.Transport{ns}}, "no endpoint path"},
		{"advertise without listen", core.Config{Advertise: "inproc://a"}, "client mode"},
		{"advertise of another scheme", core.Config{Listen: "inproc://c", Advertise: "tcp://h:1", Transports: []core.Transport{ns}}, "scheme"},
		{"two transports for a scheme", core.Config{Transports: []core.Transport{ns, inproc.New()}}, "two transports"},
	} {
		e, err := core.NewEnv(tc.cfg)
		if err == nil {
			e.Shutdown(context.Background())
			t.Errorf("%s: NewEnv succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestListenOnATakenAddressNamesIt(t *testing.T) {
	ns := inproc.New()
	a, err := core.NewEnv(core.Config{Listen: "inproc://busy", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	_, err = core.NewEnv(core.Config{Listen: "inproc://busy", Transports: []core.Transport{ns}})
	if err == nil || !strings.Contains(err.Error(), "inproc://busy") {
		t.Fatalf("second env on the same address: %v; want an error naming it", err)
	}
}

func TestAdvertisedAddressIsWhatRefsCarry(t *testing.T) {
	ns := inproc.New()
	e, err := core.NewEnv(core.Config{Listen: "inproc://bind", Advertise: "inproc://public", Transports: []core.Transport{ns}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	ref, err := e.Register("x", endpointFunc(func(*core.Context, any) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if e.Address() != "inproc://public" || ref.String() != "inproc://public/x" {
		t.Fatalf("Address() = %q, ref = %q; want the advertised address", e.Address(), ref)
	}
}

func TestAskHelperChecksTheReplyType(t *testing.T) {
	e, err := core.NewEnv(core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	ref, err := e.Register("x", endpointFunc(func(c *core.Context, msg any) error { return c.Reply(msg) }))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := core.Ask[int](t.Context(), ref, 7); err != nil || n != 7 {
		t.Fatalf("Ask[int] = %v, %v", n, err)
	}
	if _, err := core.Ask[string](t.Context(), ref, 7); err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Fatalf("Ask[string] of an int reply: %v", err)
	}
	if p, err := core.Ask[*shared](t.Context(), ref, nil); err != nil || p != nil {
		t.Fatalf("Ask[*shared] of a nil reply = %v, %v; want nil, nil", p, err)
	}
}

func TestZeroRefIsAnErrorNotAPanic(t *testing.T) {
	var r *core.Ref
	if err := r.Send(1); err == nil {
		t.Error("Send on a nil ref succeeded")
	}
	if _, err := new(core.Ref).Ask(t.Context(), 1); err == nil {
		t.Error("Ask on a zero ref succeeded")
	}
	e, _ := core.NewEnv(core.Config{})
	defer e.Shutdown(context.Background())
	if err := e.Stop(new(core.Ref)); err == nil {
		t.Error("Stop of a ref of no env succeeded")
	}
	if _, err := e.Lookup(t.Context(), "no-scheme"); err == nil {
		t.Error("Lookup of a malformed URI succeeded")
	}
	if _, err := e.Lookup(t.Context(), "inproc://x/y"); !errors.Is(err, core.ErrUnknownScheme) {
		t.Errorf("Lookup with no transports: %v, want ErrUnknownScheme", err)
	}
}

type hooked struct {
	started chan *core.Ref
	errs    chan error
}

func (h *hooked) OnStart(self *core.Ref) error { h.started <- self; return nil }
func (h *hooked) OnError(err error)            { h.errs <- err }

type wrapper struct{ h *hooked }

func (w wrapper) Receive(*core.Context, any) error { return errors.New("no") }
func (w wrapper) Delegate() any                    { return w.h }

func TestDelegatorPassesTheWrappedValuesCallbacksThrough(t *testing.T) {
	e, err := core.NewEnv(core.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	h := &hooked{started: make(chan *core.Ref, 1), errs: make(chan error, 1)}
	ref, err := e.Register("w", wrapper{h})
	if err != nil {
		t.Fatal(err)
	}
	if self := <-h.started; self != ref {
		t.Fatalf("OnStart got %v, want %v", self, ref)
	}
	ref.Send(1)
	if err := <-h.errs; err == nil || !strings.Contains(err.Error(), "no") {
		t.Fatalf("OnError got %v", err)
	}
}
