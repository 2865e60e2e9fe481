package core

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Context is one delivery to an endpoint: a send or an ask. It is passed
// to Receive; for an ask it may be kept and answered later from any
// goroutine. Its methods are safe for concurrent use.
type Context struct {
	ep     *endpoint
	sender string
	ans    answerer // nil for a send
	from   *peer    // the connection the message came over; nil for a local one (flow.go)
	stream *Stream  // the stream a stream's opening message opened; nil otherwise
	asker  *Context // for a local ask made while handling a message: that delivery (deadlock.go)

	meta *ctxMeta // headers and the interceptors' context (intercept.go); nil without them

	handling atomic.Int32 // handlers running this delivery (deadlock.go)
}

// answerer is the reply side of an ask: a local call or a remote one.
type answerer interface {
	reply(ep *endpoint, v any) error
	fail(ep *endpoint, err error) error
	context(c *Context) context.Context
}

// Context returns a context that carries the ask's deadline and is done
// when the asker gave up (its deadline passed, it was canceled, or the
// connection to it broke) or the ask was answered. For a send it is done
// when the env shuts down. For a stream's opening message it is the
// stream's Context.
//
// With inbound interceptors (Config.InboundInterceptors), it is the
// context they passed on, which derives from the above.
func (c *Context) Context() context.Context {
	if c.meta != nil && c.meta.ictx != nil {
		return c.meta.ictx
	}
	return c.baseContext()
}

// baseContext is Context without the interceptors' context.
func (c *Context) baseContext() context.Context {
	if c.stream != nil {
		return c.stream.ctx
	}
	if c.ans == nil {
		return c.ep.ctx
	}
	return c.ans.context(c)
}

// Self returns the receiving endpoint's ref.
func (c *Context) Self() *Ref { return c.ep.self }

// Env returns the receiving endpoint's env.
func (c *Context) Env() *Env { return c.ep.env }

// Sender returns the URI of the env the message came from: its advertised
// address, or for a client-mode sender the connection's remote address.
// For a message from the same env it is the env's own address ("" for a
// client-mode env).
func (c *Context) Sender() string { return c.sender }

// IsAsk reports whether the message is an ask, which expects a Reply or a
// Fail.
func (c *Context) IsAsk() bool { return c.ans != nil }

// Reply answers the ask with v. Only the first Reply or Fail counts;
// later calls return ErrAlreadyAnswered. If v cannot be sent (its type is
// not registered, or it is larger than Config.MaxMessageSize), Reply
// returns that error and the asker gets it as the ask's failure, so the
// asker is never left waiting. A reply that arrives after the asker gave
// up is dropped.
func (c *Context) Reply(v any) error {
	if c.ans == nil {
		return fmt.Errorf("rpcenv: reply from %s: %w", c.ep.self, ErrNotAsk)
	}
	return c.ans.reply(c.ep, v)
}

// Fail answers the ask with err; the asker receives a *RemoteError with
// err's message (and errors.Is works for this package's sentinels). Only
// the first Reply or Fail counts; later calls return ErrAlreadyAnswered.
func (c *Context) Fail(err error) error {
	if c.ans == nil {
		return fmt.Errorf("rpcenv: fail from %s: %w", c.ep.self, ErrNotAsk)
	}
	if err == nil {
		err = fmt.Errorf("Fail called with a nil error")
	}
	return c.ans.fail(c.ep, err)
}

// remoteErrorFrom turns an endpoint's error into what the asker sees.
func remoteErrorFrom(ep *endpoint, err error) *RemoteError {
	return &RemoteError{Endpoint: ep.self.String(), Message: err.Error(), Code: codeOf(err)}
}
