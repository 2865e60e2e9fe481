package core

import "fmt"

// handle acts on one frame from p; size is its length, which a send or
// an ask counts against its endpoint's credit (flow.go). owned means the
// frame is the env's (reassembled from chunks): its body is then handed
// on undecoded, for the worker or the asker to decode (chunk.go). An
// error means p broke the protocol. It never waits for a write: what it
// answers goes into the outbox's control queue.
func (e *Env) handle(p *peer, env *envelope, size int, owned bool) error {
	switch env.Kind {
	case kindSend:
		if err := p.received(env.To, size); err != nil {
			return err
		}
		x := e.localEndpoint(env.To)
		if x == nil {
			p.consumed(env.To, 0, size)
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: ErrEndpointNotFound})
			return nil
		}
		msg, err := e.decodeFor(x, env, owned)
		if err != nil {
			p.consumed(env.To, 0, size)
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: err})
			return nil
		}
		c := p.sendContext(x)
		if env.Headers != nil {
			c = &Context{ep: x, sender: c.sender, from: p, meta: metaOf(env.Headers)} // the shared one has none
		}
		if !x.post(item{kind: itemMessage, size: uint32(size), msg: msg, c: c}) {
			p.consumed(env.To, 0, size)
			e.deadLetter(DeadLetter{Target: e.uriOf(env.To), Type: env.Type, Sender: p.label(), Reason: ErrEndpointNotFound})
		}
	case kindAsk:
		if err := p.received(env.To, size); err != nil {
			return err
		}
		ic := &inCall{p: p, id: env.ID}
		ic.deadline = timeNow().Add(durationOf(env.Timeout))
		x := e.localEndpoint(env.To)
		if x == nil {
			p.consumed(env.To, 0, size)
			p.sendFail(env.ID, "", fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To)))
			return nil
		}
		msg, err := e.decodeFor(x, env, owned)
		if err != nil {
			p.consumed(env.To, 0, size)
			p.sendFail(env.ID, "", fmt.Errorf("%s: %w", e.uriOf(env.To), err))
			return nil
		}
		if ok, err := p.addInCall(ic); !ok {
			return err
		}
		ic.hctx = Context{ep: x, sender: p.label(), ans: ic, from: p, meta: metaOf(env.Headers)}
		if !x.post(item{kind: itemMessage, size: uint32(size), msg: msg, c: &ic.hctx}) {
			p.consumed(env.To, 0, size)
			ic.fail(x, envError{fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To))})
		}
	case kindOpen:
		return e.acceptStream(p, env, size, owned)
	case kindStreamData, kindStreamCredit, kindStreamEnd, kindStreamReset, kindStreamStop:
		return p.handleStream(env)
	case kindReply:
		c, abandoned := p.takeAnswered(env.ID)
		if abandoned {
			// The peer accepted an open given up on: abort its stream.
			p.resetStream(streamKey{mine: true, id: env.ID}, codeOf(ErrStreamClosed), "the opener gave up")
			return nil
		}
		if c == nil {
			return nil // a late reply: the asker gave up
		}
		msg, err := e.decodeOrDefer(env, owned)
		if err != nil {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: reply: %w", c.target, err))
			return nil
		}
		c.deliver(msg, nil)
	case kindFail:
		c, _ := p.takeAnswered(env.ID)
		if c == nil {
			return nil
		}
		if env.To != "" {
			c.deliver(nil, &RemoteError{Endpoint: env.To, Message: env.Message, Code: env.Code})
		} else if s := sentinelOf(env.Code); s != nil {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %w (%s)", c.target, s, env.Message))
		} else {
			c.deliver(nil, fmt.Errorf("rpcenv: ask %s: %s", c.target, env.Message))
		}
	case kindCancel:
		p.mu.Lock()
		ic := p.inCalls[env.ID]
		delete(p.inCalls, env.ID) // a reply after this is dropped by the asker
		p.mu.Unlock()
		if ic != nil {
			ic.end()
			if s := ic.hctx.stream; s != nil { // an open given up: the stream is over before it began
				s.fail(fmt.Errorf("rpcenv: stream from %s: the opener gave up: %w", s.remote, ErrStreamClosed))
			}
		}
	case kindBeat:
		// counted by the read loop; nothing else to do
	case kindGoodbye:
		return errGoodbye
	case kindCredit:
		switch {
		case env.ID == 0:
			return fmt.Errorf("%w: a credit frame needs a positive amount", ErrProtocol)
		case env.To == "":
			p.out.addWindow(env.ID)
		default:
			p.out.addCredit(env.To, env.ID)
		}
	case kindLookup:
		x := e.localEndpoint(env.To)
		if x == nil {
			p.sendFail(env.ID, "", fmt.Errorf("%w: %s", ErrEndpointNotFound, e.uriOf(env.To)))
			return nil
		}
		frame, err := encodeFrame(&header{kind: kindReply, id: env.ID, typ: "*rpcenv.ref"}, x.self, e.maxMsg)
		if err != nil {
			return err
		}
		p.control(frame)
	default:
		return fmt.Errorf("%w: unexpected frame kind %d after the handshake", ErrProtocol, env.Kind)
	}
	return nil
}

// decodeOrDefer decodes env's body and binds its refs, or, for a frame
// the env owns, defers that to the message's consumer.
func (e *Env) decodeOrDefer(env *envelope, owned bool) (any, error) {
	if owned {
		return &deferred{typ: env.Type, body: env.Body}, nil
	}
	msg, _, err := decodeMessage(e, env.Type, env.Body, false)
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// decodeFor is decodeOrDefer for a message to endpoint x. When x borrows
// its messages' bytes (WithBorrowedBytes) and the body is lendable and has
// a generated codec, the body is copied into a pooled frame and deferred:
// the worker decodes it, sharing its large byte strings with the message,
// and gives the frame back once Receive returned (deferred.done). A body
// the env owns already (reassembled from chunks) is deferred as it is.
func (e *Env) decodeFor(x *endpoint, env *envelope, owned bool) (any, error) {
	if x.borrow && !owned && lendable(len(env.Body)) {
		if mt, _, ok := lookupName(env.Type); ok && mt.decodeOwned != nil {
			body := newFrame(len(env.Body))
			copy(body, env.Body)
			return &deferred{typ: env.Type, body: body, lent: true}, nil
		}
	}
	return e.decodeOrDefer(env, owned)
}

// minLent is the smallest body lent to an endpoint that borrows: below
// it, an allocation and a copy cost less than the hand-off to the worker.
const minLent = 8 << 10

// lendable reports whether a body of n bytes is lent (decodeFor): at least
// minLent, and at least half of the pooled frame it goes into, so that a
// queue of lent messages holds at most twice their size.
func lendable(n int) bool {
	if n < minLent {
		return false
	}
	for _, c := range frameClasses {
		if n <= c.size {
			return 2*n >= c.size
		}
	}
	return false
}

// uriOf names one of this env's endpoints in messages.
func (e *Env) uriOf(name string) string {
	if e.addr == "" {
		return clientURI(e.name, e.id, name)
	}
	return e.addr + "/" + name
}
