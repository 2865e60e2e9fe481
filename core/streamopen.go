package core

import (
	"context"
	"errors"
	"fmt"
)

// Opening and accepting streams. An open is an ask whose answer is the
// stream's acceptance: it travels like one (on its endpoint's lane, in
// the endpoint's order, counting against its credit), and the env, not
// the handler, answers it once the endpoint takes the message.

// OpenStream opens a byte stream to the endpoint r points to, with msg as
// its opening message, and returns once the endpoint has accepted it: its
// env delivered msg, in order, to the endpoint's ReceiveStream. ctx
// bounds the open only (by default Config.AskTimeout); the open stream
// then lives until it is closed (see Stream).
//
// It fails with ErrEndpointNotFound if no endpoint of that name exists,
// with ErrNotStreamHandler if the endpoint does not implement
// StreamHandler, and as Ask does when the peer cannot be reached.
func (r *Ref) OpenStream(ctx context.Context, msg any) (*Stream, error) {
	if r == nil || r.env == nil {
		return nil, fmt.Errorf("rpcenv: open stream to %s: %w", r, errUnusableRef)
	}
	if r.env.outbound != nil {
		v, err := r.env.outbound(ctx, &Call{Kind: KindStream, Target: r, Message: msg})
		s, _ := v.(*Stream)
		if err == nil && s == nil {
			err = fmt.Errorf("rpcenv: open stream to %s: an outbound interceptor returned no stream", r)
		}
		return s, err
	}
	return r.env.openStreamTo(ctx, r, msg, nil)
}

// openStreamTo is Ref.OpenStream past the interceptors.
func (e *Env) openStreamTo(ctx context.Context, r *Ref, msg any, hdr map[string]string) (*Stream, error) {
	s, err := e.openStream(ctx, r, msg, hdr)
	if err != nil {
		return nil, fmt.Errorf("rpcenv: open stream to %s: %w", r, err)
	}
	return s, nil
}

func (e *Env) openStream(ctx context.Context, r *Ref, msg any, hdr map[string]string) (*Stream, error) {
	if e.stopping.Load() {
		return nil, ErrEnvStopped
	}
	wire, mt, err := checkType(msg)
	if err != nil {
		return nil, err
	}
	target := r.String()
	w := e.newWait(ctx)
	if e.isLocal(r) {
		opener, acceptor := newLocalPair(e.ctx, e.addr, target)
		opener.bytes, acceptor.bytes = &e.streamBytes, &e.streamBytes
		c := new(call)
		c.deadline = w.deadline
		c.hctx = Context{sender: e.addr, ans: c, stream: acceptor, meta: metaOf(hdr)}
		if err := e.postLocal(r, item{kind: itemMessage, msg: msg, c: &c.hctx}); err != nil {
			return nil, err
		}
		if _, err := e.await(ctx, &w, target, c, nil); err != nil {
			opener.fail(err)
			acceptor.fail(err)
			return nil, err
		}
		return opener, nil
	}
	p, err := e.route(r)
	if err != nil {
		return nil, err
	}
	// Whether the stream gets a byte stream of its own depends on the
	// connection, which may still be on its way.
	octx, cancel := context.WithDeadline(ctx, w.deadline)
	defer cancel()
	if err := p.awaitReady(octx); err != nil {
		if octx.Err() != nil {
			err = e.waitErr(ctx, &w, target, " (connecting)")
		}
		return nil, err
	}
	id := e.nextID.Add(1)
	key := streamKey{mine: true, id: id}
	s := newStream(e.ctx, target)
	s.bytes = &e.streamBytes
	sc, _ := p.conn.(StreamConn)
	var bl *byteLink
	if sc != nil {
		bl = newByteLink(p, key)
		s.link = bl
	} else {
		s.link = &remoteLink{p: p, key: key}
	}
	if err := p.addStream(key, s); err != nil {
		s.fail(err)
		return nil, err
	}
	h := &header{kind: kindOpen, id: id, to: r.name, typ: wire, mt: mt, headers: hdr}
	if _, err := e.remoteCall(ctx, &w, target, p, r.lane, h, msg); err != nil {
		s.fail(err)
		return nil, err
	}
	if bl != nil {
		// Accepted: open the stream's byte stream, which the peer waits for.
		bs, err := sc.OpenStream(octx, id)
		if err != nil {
			if octx.Err() != nil {
				err = e.waitErr(ctx, &w, target, " (opening the byte stream)")
			} else {
				err = fmt.Errorf("%w: open the byte stream: %v", ErrDisconnected, err)
			}
			s.abort(err, codeOf(ErrStreamClosed), "the opener gave up: "+errorText(err))
			return nil, err
		}
		bl.attach(s, bs)
	}
	return s, nil
}

// acceptStream is handle's part for an Open from p: like an ask, with a
// stream in its Context. It returns an error only when p broke the
// protocol.
func (e *Env) acceptStream(p *peer, env *envelope, size int, owned bool) error {
	if err := p.received(env.To, size); err != nil {
		return err
	}
	refuse := func(err error) {
		p.consumed(env.To, 0, size)
		p.sendFail(env.ID, "", err)
	}
	x := e.localEndpoint(env.To)
	if x == nil {
		refuse(fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To)))
		return nil
	}
	msg, err := e.decodeOrDefer(env, owned)
	if err != nil {
		refuse(fmt.Errorf("%s: %w", e.uriOf(env.To), err))
		return nil
	}
	key := streamKey{mine: false, id: env.ID}
	s := newStream(e.ctx, p.label())
	s.bytes = &e.streamBytes
	if _, ok := p.conn.(StreamConn); ok {
		s.link = newByteLink(p, key)
	} else {
		s.link = &remoteLink{p: p, key: key}
	}
	if err := p.addStream(key, s); err != nil {
		s.fail(err)
		if errors.Is(err, ErrProtocol) {
			return err
		}
		refuse(err)
		return nil
	}
	ic := &inCall{p: p, id: env.ID}
	ic.deadline = timeNow().Add(durationOf(env.Timeout))
	if ok, err := p.addInCall(ic); !ok {
		s.fail(fmt.Errorf("rpcenv: stream from %s: %w", s.remote, ErrDisconnected))
		return err // nil when p closed
	}
	ic.hctx = Context{ep: x, sender: p.label(), ans: ic, from: p, stream: s, meta: metaOf(env.Headers)}
	if !x.post(item{kind: itemMessage, size: uint32(size), msg: msg, c: &ic.hctx}) {
		p.consumed(env.To, 0, size)
		err := fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To))
		ic.fail(x, envError{err})
		s.fail(err)
	}
	return nil
}

// streamHandler returns the endpoint's ReceiveStream: its own, as
// Receive is, or that of the value it delegates to.
func (ep *endpoint) streamHandler() (StreamHandler, bool) {
	if h, ok := ep.impl.(StreamHandler); ok {
		return h, true
	}
	h, ok := ep.hooks.(StreamHandler)
	return h, ok
}

// receiveStream delivers a stream's opening message: the env accepts the
// stream (answers the open), then calls ReceiveStream. An endpoint that
// is no StreamHandler refuses it; an error from ReceiveStream aborts it,
// and the peer gets the error (it is not reported to OnError, as an
// error an asker gets is not).
func (ep *endpoint) receiveStream(c *Context, msg any) (failed bool) {
	s := c.stream
	h, ok := ep.streamHandler()
	if !ok {
		err := fmt.Errorf("%w: %s (it has no ReceiveStream method)", ErrNotStreamHandler, ep.self)
		c.ans.fail(ep, envError{err})
		s.fail(err)
		return true
	}
	if err := c.ans.reply(ep, nil); err != nil {
		s.fail(fmt.Errorf("rpcenv: stream from %s: the opener gave up: %w", s.remote, ErrStreamClosed))
		return true
	}
	if l, ok := s.link.(*byteLink); ok {
		l.expect(s)
	}
	var err error
	panicked := ep.protect("ReceiveStream", func() {
		if ep.env.inbound != nil {
			err = ep.intercepted(c, msg)
		} else {
			err = h.ReceiveStream(c, msg, s)
		}
	})
	if panicked != nil {
		err = panicked
	}
	if err != nil {
		s.CloseWithError(err) // the peer gets err, as an asker gets Receive's (a panic went to OnError too)
		return true
	}
	return false
}
