package conformance

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// ErrQuotaExceeded is an application's error, registered with a wire code
// (core.RegisterError) so that errors.Is holds for it across envs.
var ErrQuotaExceeded = errors.New("quota exceeded")

// quotaCode is ErrQuotaExceeded's wire code.
const quotaCode = "conformance.quota_exceeded"

func init() { core.RegisterError(quotaCode, ErrQuotaExceeded) }

// errUnregistered is an error with no wire code.
var errUnregistered = errors.New("an error of no registered kind")

// codeOfRemote is the code of err's *core.RemoteError, for messages.
func codeOfRemote(err error) string {
	var re *core.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return "(no RemoteError)"
}

// waitedFor matches the duration a deadline error reports.
var waitedFor = regexp.MustCompile(`within [0-9.]+(ms|s)\b`)

var askCases = concat(
	across("ReturnedErrorReachesTheAskerAsRemoteError", all, func(t *testing.T, h *harness, at, from *core.Env) {
		ref := h.register(at, "err", &probe{receive: func(*core.Context, any) error { return errBoom }})
		_, err := ask(t, h.lookup(from, at, "err"), Ping{})
		var re *core.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("Ask: %v (%T), want a *core.RemoteError", err, err)
		}
		if re.Message != "boom" || re.Endpoint != ref.String() {
			t.Fatalf("RemoteError %+v, want Message %q and Endpoint %q", re, "boom", ref)
		}
	}),
	across("FailWithASentinelKeepsErrorsIs", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "fail", &probe{receive: func(c *core.Context, _ any) error {
			return c.Fail(fmt.Errorf("no such thing: %w", core.ErrNameTaken))
		}})
		_, err := ask(t, h.lookup(from, at, "fail"), Ping{})
		var re *core.RemoteError
		if !errors.As(err, &re) || !errors.Is(err, core.ErrNameTaken) {
			t.Fatalf("Ask: %v, want a *core.RemoteError for which errors.Is(err, ErrNameTaken)", err)
		}
		if !strings.Contains(err.Error(), "no such thing") {
			t.Fatalf("Ask error %q lost the endpoint's message", err)
		}
	}),
	across("RegisteredErrorKeepsErrorsIs", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "quota", &probe{receive: func(_ *core.Context, msg any) error {
			if msg.(Ping).N == 1 {
				return fmt.Errorf("user 7: %w", ErrQuotaExceeded)
			}
			return errUnregistered
		}})
		ref := h.lookup(from, at, "quota")
		_, err := ask(t, ref, Ping{N: 1})
		var re *core.RemoteError
		if !errors.As(err, &re) || !errors.Is(err, ErrQuotaExceeded) || re.Code != quotaCode {
			t.Fatalf("Ask: %v (code %q), want a *core.RemoteError with code %q for which errors.Is(err, ErrQuotaExceeded)", err, codeOfRemote(err), quotaCode)
		}
		if !strings.Contains(err.Error(), "user 7: quota exceeded") {
			t.Fatalf("Ask error %q lost the endpoint's message", err)
		}
		// An error that wraps no registered one crosses as text.
		_, err = ask(t, ref, Ping{N: 2})
		if !errors.As(err, &re) || re.Code != "" || errors.Unwrap(err) != nil || re.Message != errUnregistered.Error() {
			t.Fatalf("Ask: %v (code %q), want a *core.RemoteError with no code and the error's text", err, codeOfRemote(err))
		}
	}),
	across("PanicIsRecoveredAndTheEndpointKeepsWorking", all, func(t *testing.T, h *harness, at, from *core.Env) {
		panics := make(chan error, 1)
		h.register(at, "panicky", &probe{
			receive: func(c *core.Context, msg any) error {
				if msg.(Ping).N == 13 {
					panic("unlucky")
				}
				return c.Reply(Pong{N: msg.(Ping).N})
			},
			onError: func(err error) { panics <- err },
		})
		ref := h.lookup(from, at, "panicky")
		_, err := ask(t, ref, Ping{N: 13})
		var re *core.RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "unlucky") {
			t.Fatalf("Ask to a panicking handler: %v, want a *core.RemoteError naming the panic", err)
		}
		var pe *core.PanicError
		if err := recv(t, panics, "OnError"); !errors.As(err, &pe) || pe.Value != "unlucky" || len(pe.Stack) == 0 {
			t.Fatalf("OnError got %v, want a *core.PanicError with value and stack", err)
		}
		if v, err := ask(t, ref, Ping{N: 1}); err != nil || v != (Pong{N: 1}) {
			t.Fatalf("Ask after the panic: %v, %v; the endpoint should keep working", v, err)
		}
	}),
	across("ReplyMayComeLaterFromAnotherGoroutine", all, func(t *testing.T, h *harness, at, from *core.Env) {
		h.register(at, "later", &probe{receive: func(c *core.Context, msg any) error {
			go func() { c.Reply(Pong{N: msg.(Ping).N}) }()
			return nil
		}})
		if v, err := ask(t, h.lookup(from, at, "later"), Ping{N: 5}); err != nil || v != (Pong{N: 5}) {
			t.Fatalf("Ask = %v, %v; want Pong{5}", v, err)
		}
	}),
	across("OnlyTheFirstAnswerCounts", all, func(t *testing.T, h *harness, at, from *core.Env) {
		second := make(chan error, 2)
		h.register(at, "twice", &probe{receive: func(c *core.Context, msg any) error {
			if !c.IsAsk() {
				second <- c.Reply(true)
				return nil
			}
			c.Reply(Pong{N: 1})
			second <- c.Reply(Pong{N: 2})
			second <- c.Fail(errBoom)
			return nil
		}})
		ref := h.lookup(from, at, "twice")
		if v, err := ask(t, ref, Ping{}); err != nil || v != (Pong{N: 1}) {
			t.Fatalf("Ask = %v, %v; want the first reply", v, err)
		}
		for range 2 {
			if err := recv(t, second, "the second answer's error"); !errors.Is(err, core.ErrAlreadyAnswered) {
				t.Fatalf("second answer returned %v, want ErrAlreadyAnswered", err)
			}
		}
		if err := ref.Send(Ping{}); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, second, "Reply on a send"); !errors.Is(err, core.ErrNotAsk) {
			t.Fatalf("Reply while handling a send returned %v, want ErrNotAsk", err)
		}
	}),
	across("CallerDeadlineFailsTheAskAndALateReplyIsDropped", all, func(t *testing.T, h *harness, at, from *core.Env) {
		release := make(chan struct{})
		lateReply := make(chan error, 1)
		h.register(at, "stuck", &probe{receive: func(c *core.Context, msg any) error {
			if msg.(Ping).N == 0 {
				<-release
				lateReply <- c.Reply(Pong{}) // dropped, not an error
				return nil
			}
			return c.Reply(Pong{N: msg.(Ping).N})
		}})
		ref := h.lookup(from, at, "stuck")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := ref.Ask(ctx, Ping{})
		close(release)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ask past its deadline: %v, want context.DeadlineExceeded", err)
		}
		for _, want := range []string{ref.String(), "caller's context"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("deadline error %q does not name %q", err, want)
			}
		}
		if !waitedFor.MatchString(err.Error()) {
			t.Errorf("deadline error %q does not say how long the ask waited", err)
		}
		if err := recv(t, lateReply, "the late reply"); err != nil {
			t.Errorf("a late Reply returned %v; it should be dropped quietly", err)
		}
		if v, err := ask(t, ref, Ping{N: 3}); err != nil || v != (Pong{N: 3}) {
			t.Fatalf("next Ask = %v, %v; a late reply must not reach it", v, err)
		}
	}),
	across("CallerCancelEndsTheHandlersContext", all, func(t *testing.T, h *harness, at, from *core.Env) {
		inside := make(chan struct{})
		gaveUp := make(chan struct{})
		h.register(at, "stuck", &probe{receive: func(c *core.Context, msg any) error {
			close(inside)
			<-c.Context().Done() // ends only because the asker gives up
			close(gaveUp)
			return nil
		}})
		ref := h.lookup(from, at, "stuck")
		ctx, cancel := context.WithCancel(context.Background())
		errs := askLater(ctx, ref, Ping{})
		closed(t, inside, "the ask to reach the handler")
		cancel()
		if err := recv(t, errs, "the canceled ask"); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), ref.String()) {
			t.Fatalf("canceled Ask: %v, want context.Canceled naming %s", err, ref)
		}
		closed(t, gaveUp, "the handler's context to be done after the asker gave up")
	}),
	across("ConfigAskTimeoutAppliesWhenTheContextHasNoDeadline", all, func(t *testing.T, h *harness, at, from *core.Env) {
		if at == from {
			at = h.server("patient", func(c *core.Config) { c.AskTimeout = 100 * time.Millisecond })
			from = at
		} else if from.Address() != "" {
			from = h.server("impatient", func(c *core.Config) { c.AskTimeout = 100 * time.Millisecond })
		} else {
			from = h.client("impatient", func(c *core.Config) { c.AskTimeout = 100 * time.Millisecond })
		}
		release := make(chan struct{})
		defer close(release)
		h.register(at, "stuck", &probe{receive: func(c *core.Context, _ any) error {
			select {
			case <-release:
			case <-c.Context().Done():
			}
			return nil
		}})
		_, err := h.lookup(from, at, "stuck").Ask(context.Background(), Ping{})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Config.AskTimeout") || !strings.Contains(err.Error(), "100ms") {
			t.Fatalf("Ask = %v; want context.DeadlineExceeded naming Config.AskTimeout and 100ms", err)
		}
	}),
	across("HandlerContextCarriesTheAsksDeadline", all, func(t *testing.T, h *harness, at, from *core.Env) {
		deadlines := make(chan time.Time, 1)
		h.register(at, "dl", &probe{receive: func(c *core.Context, _ any) error {
			d, ok := c.Context().Deadline()
			if !ok {
				return c.Fail(errors.New("no deadline"))
			}
			deadlines <- d
			return c.Reply(true)
		}})
		want := time.Now().Add(time.Hour)
		ctx, cancel := context.WithDeadline(context.Background(), want)
		defer cancel()
		if _, err := h.lookup(from, at, "dl").Ask(ctx, Ping{}); err != nil {
			t.Fatalf("Ask: %v", err)
		}
		got := recv(t, deadlines, "the handler's deadline")
		if got.Before(want.Add(-time.Minute)) || got.After(want.Add(time.Minute)) {
			t.Fatalf("handler deadline %v, want about %v", got, want)
		}
	}),
	across("InFlightAskFailsWithErrDisconnectedWhenTheConnectionBreaks", networks, func(t *testing.T, h *harness, at, from *core.Env) {
		inside := make(chan struct{})
		handlerDone := make(chan struct{})
		h.register(at, "hang", &probe{receive: func(c *core.Context, _ any) error {
			close(inside)
			<-c.Context().Done() // the connection to the asker is gone
			close(handlerDone)
			return nil
		}})
		ref := h.lookup(from, at, "hang")
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		errs := askLater(ctx, ref, Ping{})
		closed(t, inside, "the ask to reach the handler")
		h.wire.sever()
		err := recv(t, errs, "the in-flight ask to fail")
		if !errors.Is(err, core.ErrDisconnected) {
			t.Fatalf("in-flight Ask when the connection broke: %v, want ErrDisconnected (not a timeout)", err)
		}
		closed(t, handlerDone, "the handler's context to be done when the asker's connection broke")
		h.register(at, "echo", echo())
		if v, err := ask(t, h.lookup(from, at, "echo"), Ping{N: 1}); err != nil || v != (Pong{N: 2}) {
			t.Fatalf("Ask after the break = %v, %v; a new message should open a new connection", v, err)
		}
	}),
)
