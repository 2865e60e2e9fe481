package core

import (
	"context"
	"fmt"
	"reflect"
	"time"
	"unicode/utf8"
)

// Interceptors wrap what an env sends and what it delivers, in the style
// of grpc-go's chained interceptors: Config.OutboundInterceptors see every
// Send, Ask and OpenStream made through the env's refs, and
// Config.InboundInterceptors every message delivered to its endpoints.
// The first of a list is the outermost: it runs first and returns last.
// With no interceptor set, neither path does any of this.

// CallKind tells a send, an ask and a stream's opening apart.
type CallKind uint8

// The kinds of calls and deliveries.
const (
	// KindSend is a one-way message: Ref.Send, Ref.SendContext.
	KindSend CallKind = iota + 1
	// KindAsk is a request that expects a reply: Ref.Ask.
	KindAsk
	// KindStream is a stream's opening message: Ref.OpenStream.
	KindStream
)

// String returns "send", "ask" or "stream".
func (k CallKind) String() string {
	switch k {
	case KindSend:
		return "send"
	case KindAsk:
		return "ask"
	case KindStream:
		return "stream"
	}
	return fmt.Sprintf("CallKind(%d)", uint8(k))
}

// Call is an outgoing message as an OutboundInterceptor sees it. An
// interceptor may set headers, which travel with the message to the
// receiving endpoint (Context.Headers); the other fields are for reading.
type Call struct {
	Kind    CallKind
	Target  *Ref
	Message any
	// Headers is the metadata sent with the message; nil until a header
	// is set. Keys are 1 to 64 bytes of a-z, 0-9, '-', '_' and '.';
	// values are valid UTF-8 of at most 4096 bytes; at most 32 headers
	// of at most 8192 bytes in all (keys and values) may be sent, and a
	// call with more fails with ErrInvalidHeader. Keys starting with
	// "rpcenv-" are reserved for the protocol.
	Headers map[string]string
}

// SetHeader sets the header key to value, making Headers if needed.
func (c *Call) SetHeader(key, value string) {
	if c.Headers == nil {
		c.Headers = make(map[string]string, 2)
	}
	c.Headers[key] = value
}

// Invoker makes a call: the next interceptor, or the env itself. It
// returns an ask's reply, a stream's *Stream, or nil for a send.
type Invoker func(ctx context.Context, call *Call) (any, error)

// OutboundInterceptor wraps a call made through one of the env's refs.
// It may inspect the call, set headers, call next (once, or not at all:
// the caller then gets the interceptor's error) and look at the result.
// ctx is the caller's: context.Background() for Ref.Send, the given one
// for Ref.SendContext, Ref.Ask and Ref.OpenStream.
type OutboundInterceptor func(ctx context.Context, call *Call, next Invoker) (any, error)

// Delivery is a message arriving at an endpoint, as an
// InboundInterceptor sees it.
type Delivery struct {
	Kind     CallKind
	Endpoint *Ref
	Message  any
	// Context is the one Receive gets: its Headers, Sender and IsAsk
	// describe the message.
	Context *Context
}

// Handler delivers a message: the next interceptor, or the endpoint's
// Receive (ReceiveStream for a stream). The ctx it is given becomes the
// handler's Context.Context(), so an interceptor can hand the handler a
// context that carries, say, a trace span.
type Handler func(ctx context.Context, d *Delivery) error

// InboundInterceptor wraps the delivery of a message to one of the env's
// endpoints. It runs on the endpoint's worker, in the endpoint's order.
// If it returns an error without calling next, the message is not
// delivered: an ask fails with that error, and a send's error goes to
// OnError (or the log), as an error returned by Receive does. A panic is
// recovered as one in Receive is.
type InboundInterceptor func(ctx context.Context, d *Delivery, next Handler) error

// Header limits (docs/PROTOCOL.md, "Headers").
const (
	maxHeaders      = 32
	maxHeaderKey    = 64
	maxHeaderValue  = 4096
	maxHeaderBytes  = 8192
	reservedHeaders = "rpcenv-"
)

// checkHeaders returns an error naming the first header that breaks the
// limits, or nil.
func checkHeaders(h map[string]string) error {
	if len(h) > maxHeaders {
		return fmt.Errorf("%d headers, at most %d may be sent", len(h), maxHeaders)
	}
	total := 0
	for k, v := range h {
		if err := checkHeaderKey(k); err != nil {
			return err
		}
		if len(v) > maxHeaderValue || !utf8.ValidString(v) {
			return fmt.Errorf("header %q: the value must be valid UTF-8 of at most %d bytes (it has %d)", k, maxHeaderValue, len(v))
		}
		total += len(k) + len(v)
	}
	if total > maxHeaderBytes {
		return fmt.Errorf("headers of %d bytes, at most %d may be sent", total, maxHeaderBytes)
	}
	return nil
}

func checkHeaderKey(k string) error {
	if len(k) == 0 || len(k) > maxHeaderKey {
		return fmt.Errorf("header key %q: want 1 to %d bytes", k, maxHeaderKey)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("header key %q: only a-z, 0-9, '-', '_' and '.' are allowed", k)
		}
	}
	return nil
}

// Headers returns the headers the message came with, or nil. The map
// must not be modified.
func (c *Context) Headers() map[string]string {
	if c.meta == nil {
		return nil
	}
	return c.meta.headers
}

// Header returns the value of the header key, or "".
func (c *Context) Header(key string) string { return c.Headers()[key] }

// ctxMeta is what a Context has only with headers or interceptors: kept
// behind a pointer, so that a plain delivery's Context stays small.
type ctxMeta struct {
	headers map[string]string // the message's headers
	ictx    context.Context   // the context the inbound interceptors handed the handler
}

// metaOf returns the ctxMeta of a message with headers h, or nil.
func metaOf(h map[string]string) *ctxMeta {
	if h == nil {
		return nil
	}
	return &ctxMeta{headers: h}
}

// chainOutbound composes the interceptors around final, once, at NewEnv:
// a call then costs no closure. nil without interceptors.
func chainOutbound(ics []OutboundInterceptor, final Invoker) Invoker {
	return chain(ics, final, func(ic OutboundInterceptor, next Invoker) Invoker {
		return func(ctx context.Context, call *Call) (any, error) { return ic(ctx, call, next) }
	})
}

// chainInbound is chainOutbound for deliveries.
func chainInbound(ics []InboundInterceptor, final Handler) Handler {
	return chain(ics, final, func(ic InboundInterceptor, next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error { return ic(ctx, d, next) }
	})
}

// chain wraps final in the non-nil interceptors of ics, the first
// outermost; it returns the zero F (nil) when there are none.
func chain[I, F any](ics []I, final F, wrap func(I, F) F) F {
	next, wrapped := final, false
	for i := len(ics) - 1; i >= 0; i-- {
		if reflect.ValueOf(ics[i]).IsNil() { // a nil func in the list
			continue
		}
		next, wrapped = wrap(ics[i], next), true
	}
	if !wrapped {
		var none F
		return none
	}
	return next
}

// invoke is the end of the outbound chain: the call itself.
func (e *Env) invoke(ctx context.Context, call *Call) (any, error) {
	r := call.Target
	if r == nil || r.env == nil {
		return nil, fmt.Errorf("rpcenv: %s %s: %w", call.Kind, r, errUnusableRef)
	}
	if len(call.Headers) == 0 {
		call.Headers = nil
	} else if err := checkHeaders(call.Headers); err != nil {
		return nil, fmt.Errorf("rpcenv: %s %s: %w: %v", call.Kind, r, ErrInvalidHeader, err)
	}
	switch call.Kind {
	case KindSend:
		return nil, r.env.send(ctx, r, call.Message, call.Headers)
	case KindAsk:
		return r.env.ask(ctx, r, call.Message, call.Headers)
	case KindStream:
		s, err := r.env.openStreamTo(ctx, r, call.Message, call.Headers)
		if err != nil {
			return nil, err // not a typed nil *Stream in the interface
		}
		return s, nil
	}
	return nil, fmt.Errorf("rpcenv: %s %s: unknown call kind", call.Kind, r)
}

// intercepted runs the inbound chain for a message to ep: Receive, or
// for a stream's opening message ReceiveStream. A send's
// Context is shared, so the delivery gets a copy that can carry the
// interceptors' context.
func (ep *endpoint) intercepted(c *Context, msg any) error {
	kind := KindAsk
	switch {
	case c.stream != nil:
		kind = KindStream
	case c.ans == nil:
		kind = KindSend
		c = &Context{ep: c.ep, sender: c.sender, from: c.from, meta: metaOf(c.Headers())}
	}
	return ep.env.inbound(lazyContext{c}, &Delivery{Kind: kind, Endpoint: ep.self, Message: msg, Context: c})
}

// lazyContext is the context the inbound chain starts from: the handler's
// (Context.Context), made only when something asks for its deadline or
// its end. An interceptor that only adds values (a trace span) then costs
// no deadline context and timer per ask. One pointer: boxing it in an
// interface allocates nothing.
type lazyContext struct{ c *Context }

func (l lazyContext) Deadline() (time.Time, bool) { return l.c.baseContext().Deadline() }
func (l lazyContext) Done() <-chan struct{}       { return l.c.baseContext().Done() }
func (l lazyContext) Err() error                  { return l.c.baseContext().Err() }
func (l lazyContext) Value(key any) any {
	if key == (invocationKey{}) {
		return l.c
	}
	return nil // the handler's contexts carry no other value
}

// deliver is the end of the inbound chain: the endpoint's own handler,
// with ctx as its Context.Context().
func deliver(ctx context.Context, d *Delivery) error {
	c := d.Context
	if ctx != (lazyContext{c}) { // the interceptors made their own
		if c.meta == nil {
			c.meta = &ctxMeta{}
		}
		c.meta.ictx = ctx
	}
	if d.Kind == KindStream {
		h, _ := c.ep.streamHandler()
		return h.ReceiveStream(c, d.Message, c.stream)
	}
	return c.ep.impl.Receive(c, d.Message)
}
