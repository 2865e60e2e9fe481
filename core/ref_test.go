package core_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// TestRefIdentity checks Equal and String on refs to one endpoint got in
// different ways (Register, Lookup, inside a message), into a listening
// env and into a client-mode env, and their use as map keys.
func TestRefIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := inproc.New()
	newEnv := func(cfg core.Config) *core.Env {
		t.Helper()
		cfg.Transports = []core.Transport{tr}
		e, err := core.NewEnv(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	srv := newEnv(core.Config{Name: "srv", Listen: "inproc://ref-identity"})
	defer srv.Close()
	cli := newEnv(core.Config{Name: "cli"}) // client mode
	defer cli.Close()

	got := make(chan *core.Ref, 1)
	driver, err := srv.Register("driver", endpointFunc(func(c *core.Context, msg any) error {
		got <- msg.(*core.Ref)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	looked, err := cli.Lookup(ctx, "inproc://ref-identity/driver")
	if err != nil {
		t.Fatal(err)
	}
	exec, err := cli.Register("executor", endpointFunc(func(*core.Context, any) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if err := looked.Send(exec); err != nil { // the executor registers with the driver
		t.Fatal(err)
	}
	var arrived *core.Ref
	select {
	case arrived = <-got:
	case <-ctx.Done():
		t.Fatal("the executor's ref did not arrive")
	}

	same := []struct {
		what string
		a, b *core.Ref
	}{
		{"a listening env's endpoint, registered and looked up", driver, looked},
		{"a client-mode env's endpoint, registered and received", exec, arrived},
	}
	for _, c := range same {
		if !c.a.Equal(c.b) || !c.b.Equal(c.a) {
			t.Errorf("%s: not Equal (%s, %s)", c.what, c.a, c.b)
		}
		if c.a.String() != c.b.String() {
			t.Errorf("%s: String %q and %q differ", c.what, c.a, c.b)
		}
	}
	if s := driver.String(); s != "inproc://ref-identity/driver" {
		t.Errorf("driver.String() = %q, want its URI", s)
	}
	if !regexp.MustCompile(`^client://cli\.[0-9a-f]{32}/executor$`).MatchString(exec.String()) {
		t.Errorf("exec.String() = %q, want client://cli.<32 hex digits>/executor", exec)
	}

	// As map keys: both ways of getting a ref find the same entry.
	byKey := map[string]string{driver.String(): "driver", exec.String(): "executor"}
	if byKey[looked.String()] != "driver" || byKey[arrived.String()] != "executor" || len(byKey) != 2 {
		t.Errorf("map keyed by String: %v", byKey)
	}

	// Different endpoints, nil refs.
	if driver.Equal(exec) || exec.Equal(driver) || driver.Equal(nil) || (*core.Ref)(nil).Equal(driver) {
		t.Error("refs to different endpoints, or to nil, are Equal")
	}
	if !(*core.Ref)(nil).Equal(nil) {
		t.Error("a nil ref is not Equal to nil")
	}

	// An env restarted at the same address is another env: the same
	// String, not Equal.
	srv.Close()
	srv2 := newEnv(core.Config{Name: "srv", Listen: "inproc://ref-identity"})
	defer srv2.Close()
	driver2, err := srv2.Register("driver", endpointFunc(func(*core.Context, any) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if driver2.String() != driver.String() || driver2.Equal(driver) {
		t.Errorf("restarted env: String %q (was %q), Equal %v; want the same String, not Equal", driver2, driver, driver2.Equal(driver))
	}
}
