package core

import "fmt"

// Flow control (docs/PROTOCOL.md, "Flow control"): a peer may send to one
// of our endpoints only while it has credit for it. Each connection
// starts with initialWindow bytes of credit per endpoint name; a message
// may go out while the sender's credit is positive and costs its frame's
// length (so the last one may overdraw). The receiver gives credit back
// as the endpoint handles the messages, keeping what the peer may send
// plus what waits in the inbox within the endpoint's inbox limit. So a
// slow endpoint holds at most its limit (or initialWindow, if larger)
// plus one message from each connection, and its remote senders wait,
// while other endpoints on the same connection go on.
//
// The sender's side is outbox.credit; this file is the receiver's.

// window is what this env knows of one peer's credit for one endpoint
// name: what the peer may still send (avail) and what of it waits in the
// endpoint's inbox (queued).
type window struct {
	avail  int64
	queued int64
}

// received accounts a send or ask of n bytes from p to endpoint name. A
// peer that sends without credit breaks the protocol. Called by p's read
// loop.
func (p *peer) received(name string, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == peerClosed {
		return nil
	}
	w := p.windows[name]
	if w == nil {
		if len(p.windows) >= maxWindows {
			return fmt.Errorf("%w: messages for more than %d endpoint names in flight", ErrProtocol, maxWindows)
		}
		if p.windows == nil {
			p.windows = map[string]*window{}
		}
		w = &window{avail: initialWindow}
		p.windows[name] = w
	}
	if w.avail <= 0 {
		return fmt.Errorf("%w: a message of %d bytes to %q without credit (%d)", ErrProtocol, n, name, w.avail)
	}
	w.avail -= int64(n)
	w.queued += int64(n)
	return nil
}

// maxWindows bounds the windows a connection keeps: one per endpoint name
// with messages in flight, or whose credit was raised above the initial
// window.
const maxWindows = 4096

// consumed gives back the credit of a message of n bytes to endpoint
// name, once it has been handled (limit is the endpoint's inbox limit) or
// dropped (limit 0: its credit comes back as it was). Credit goes back in
// batches of at least a quarter of the limit, so a credit frame is rare.
func (p *peer) consumed(name string, limit, n int) {
	p.mu.Lock()
	w := p.windows[name]
	if w == nil {
		p.mu.Unlock()
		return
	}
	w.queued -= int64(n)
	var grant int64
	if limit <= 0 {
		grant = int64(n)
	} else if g := int64(limit) - w.queued - w.avail; g >= max(int64(limit)/4, 1) {
		grant = g
	}
	w.avail += grant
	if w.queued == 0 && w.avail == initialWindow {
		delete(p.windows, name) // at rest: the peer's credit is the initial one again
	}
	p.mu.Unlock()
	if grant > 0 {
		if frame, err := encodeFrame(&header{kind: kindCredit, id: uint64(grant), to: name}, nil, maxFrame); err == nil {
			p.control(frame)
		}
	}
}

// readWindow is the receiver's side of the connection window: what the
// peer may still write of data frames, and what it has written since the
// last Credit frame. It belongs to the read loop.
type readWindow struct {
	avail  int64
	unsent int64
}

// isData reports whether frame is a data frame, which counts against the
// connection window: a Send, an Ask, a chunk, or a stream's Open, data or
// end (everything the writer takes from a lane).
func isData(frame []byte) bool {
	if len(frame) < 2 {
		return false
	}
	k := frame[1]
	return k == kindSend || k == kindAsk || k == kindChunk || k == kindLast || k == kindOpen || k == kindStreamData || k == kindStreamEnd
}

// read accounts a data frame of n bytes from p, and gives the window back
// in steps of a quarter; granted reports whether it queued a Credit. A
// peer that writes past the window breaks the protocol.
func (w *readWindow) read(p *peer, n int) (granted bool, err error) {
	if w.avail <= 0 {
		return false, fmt.Errorf("%w: a data frame of %d bytes past the connection window", ErrProtocol, n)
	}
	w.avail -= int64(n)
	w.unsent += int64(n)
	if w.unsent >= connWindow/4 {
		if frame, err := encodeFrame(&header{kind: kindCredit, id: uint64(w.unsent)}, nil, maxFrame); err == nil {
			w.avail += w.unsent
			w.unsent = 0
			return true, p.control(frame)
		}
	}
	return false, nil
}
