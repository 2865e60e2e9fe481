package rpcotel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// The total of the connections' bytes never goes down as connections
// close and come back, and counts what each one had when last seen.
func TestConnectionBytesStayMonotonicAsConnectionsComeAndGo(t *testing.T) {
	peer := func(id, remote string, in, out uint64) core.PeerStats {
		return core.PeerStats{EnvID: id, Remote: remote, BytesIn: in, BytesOut: out}
	}
	steps := []struct {
		what    string
		peers   []core.PeerStats
		in, out uint64
	}{
		{"none", nil, 0, 0},
		{"x up", []core.PeerStats{peer("x", "tcp://x", 10, 20)}, 10, 20},
		{"y up", []core.PeerStats{peer("x", "tcp://x", 15, 25), peer("y", "tcp://y", 1, 2)}, 16, 27},
		{"x gone", []core.PeerStats{peer("y", "tcp://y", 3, 4)}, 18, 29},
		{"x back, counting again", []core.PeerStats{peer("x", "tcp://x", 5, 5), peer("y", "tcp://y", 3, 4)}, 23, 34},
		{"x replaced again between collections", []core.PeerStats{peer("x", "tcp://x", 1, 100), peer("y", "tcp://y", 3, 4)}, 24, 134},
		{"same id, another address", []core.PeerStats{peer("x", "tcp://x2", 7, 7), peer("y", "tcp://y", 3, 4)}, 31, 141},
		{"all gone", nil, 31, 141},
	}
	var b byteTotals
	var lastIn, lastOut uint64
	for _, s := range steps {
		in, out := b.update(s.peers)
		if in != s.in || out != s.out {
			t.Errorf("%s: %d in, %d out; want %d, %d", s.what, in, out, s.in, s.out)
		}
		if in < lastIn || out < lastOut {
			t.Errorf("%s: went down from %d, %d to %d, %d", s.what, lastIn, lastOut, in, out)
		}
		lastIn, lastOut = in, out
	}
}

type typedErr struct{}

func (typedErr) Error() string     { return "typed" }
func (typedErr) ErrorType() string { return "app.typed" }

func TestErrorTypeIsACodeNotAText(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("rpcenv: ask x: %w", core.ErrDisconnected), "disconnected"},
		{&core.RemoteError{Endpoint: "inproc://b/svc", Message: "over quota", Code: "billing.quota"}, "billing.quota"},
		{&core.RemoteError{Endpoint: "inproc://b/svc", Message: "boom"}, "_OTHER"},
		{fmt.Errorf("waited 2s: %w", context.DeadlineExceeded), "deadline_exceeded"},
		{context.Canceled, "canceled"},
		{fmt.Errorf("wrapped: %w", typedErr{}), "app.typed"},
		{errPanicked, "panic"},
		{errors.New("anything else"), "_OTHER"},
	} {
		if got := errorType(c.err); got != c.want {
			t.Errorf("errorType(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestMethodAndAddressNames(t *testing.T) {
	env, err := core.NewEnv(core.Config{Name: "solo"}) // client mode: no address
	if err != nil {
		t.Fatal(err)
	}
	defer env.Shutdown(context.Background())
	ref, err := env.Register("svc", nopEndpoint{})
	if err != nil {
		t.Fatal(err)
	}
	if got := serverAddress(ref); !strings.HasPrefix(got, "client://solo.") || strings.HasSuffix(got, "/svc") || got+"/svc" != ref.String() {
		t.Errorf("serverAddress of a client-mode ref %s = %q, want its env's label", ref, got)
	}
	type local struct{}
	for _, c := range []struct {
		msg  any
		want string
	}{
		{local{}, "svc/rpcotel.local"},
		{&local{}, "svc/rpcotel.local"},
		{"text", "svc/string"},
		{nil, "svc/<nil>"},
	} {
		if got := methodName(ref, c.msg); got != c.want {
			t.Errorf("methodName(%T) = %q, want %q", c.msg, got, c.want)
		}
	}
}

type nopEndpoint struct{}

func (nopEndpoint) Receive(*core.Context, any) error { return nil }
