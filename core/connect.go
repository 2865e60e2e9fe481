package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"
)

// dial connects p, runs the handshake, then reads from the connection
// until it breaks. It owns p's connection.
func (e *Env) dial(p *peer, addr string) {
	defer e.wg.Done()
	t, err := e.transport(p.scheme)
	var conn Conn
	if err == nil {
		ctx, cancel := context.WithTimeout(e.ctx, e.connectTimeout)
		conn, err = t.Dial(ctx, addr, e.connOptions())
		if err == nil {
			err = e.handshake(ctx, p, conn, true)
		}
		cancel()
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		if e.stopping.Load() {
			err = fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name)
		} else if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrDisconnected) {
			err = fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		err = fmt.Errorf("connect to %s: %w", p.dialAddr, err)
		e.peers.recordFailure(p.dialAddr, err)
		p.close(err)
		if !e.stopping.Load() {
			e.log.Warn("rpcenv: connect failed", "peer", p.dialAddr, "err", err)
			e.broadcast(item{kind: itemNetworkError, ev: &netEvent{remote: p.dialAddr, err: err}})
		}
		return
	}
	e.serve(p)
}

// Accept backoff: after an Accept error, the accept loop waits
// acceptBackoffMin, doubling after each error in a row up to
// acceptBackoffMax, then tries again (as net/http's Server.Serve does).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptLoop accepts connections until the listener closes. Any other
// Accept error (out of file descriptors, say) is waited out with a
// backoff, so a burst never ends listening for good.
func (e *Env) acceptLoop(l Listener) {
	defer e.wg.Done()
	var delay time.Duration
	var pause *time.Timer
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.stopping.Load() {
				return
			}
			delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
			if ok, skipped := e.acceptLog.allow(); ok {
				e.log.Warn("rpcenv: accept failed; retrying", "listen", e.addr, "err", err, "retry_in", delay, "not_logged_since_last", skipped)
			}
			if pause == nil {
				pause = time.NewTimer(delay)
				defer pause.Stop()
			} else {
				pause.Reset(delay)
			}
			select {
			case <-pause.C:
				continue
			case <-e.ctx.Done(): // Shutdown closes the listener
				return
			}
		}
		delay = 0
		e.peers.mu.Lock()
		closed := e.peers.closed
		if !closed {
			e.wg.Add(1)
		}
		e.peers.mu.Unlock()
		if closed {
			conn.Close()
			return
		}
		go e.accept(conn)
	}
}

// accept runs the handshake of an accepted connection, then serves it.
func (e *Env) accept(conn Conn) {
	defer e.wg.Done()
	p := e.newPeer("", "")
	if scheme, _, _, err := parseURI(e.addr); err == nil {
		p.scheme = scheme
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.handshakeTimeout)
	err := e.handshake(ctx, p, conn, false)
	cancel()
	if err != nil {
		conn.Close()
		if !e.stopping.Load() {
			e.refused.Add(1)
			if ok, skipped := e.refusedLog.allow(); ok {
				e.log.Warn("rpcenv: refused connection", "from", p.scheme+"://"+conn.RemoteAddr(), "err", err, "not_logged_since_last", skipped)
			}
		}
		return
	}
	e.serve(p)
}

// serve makes p live, then reads frames until the connection breaks.
func (e *Env) serve(p *peer) {
	first, ok := e.peers.registerUp(p)
	if !ok {
		p.close(fmt.Errorf("%w: env %s shut down", ErrEnvStopped, e.name))
		return
	}
	if first {
		e.broadcast(item{kind: itemConnected, ev: &netEvent{remote: p.label()}})
	}
	if !p.up() {
		return
	}
	if sc, ok := p.conn.(StreamConn); ok {
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.acceptByteStreams(sc)
		}()
		defer func() { <-done }() // the read loop's end closed p, and so sc
	}
	var (
		env   envelope
		names = names{}
		parts reassembly
		win   = readWindow{avail: connWindow}
	)
	bc, buffered := p.conn.(BufferedConn)
	for {
		frame, err := p.conn.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrProtocol) { // a sealed frame that does not open
				e.protocolError(p, err)
				return
			}
			if errors.Is(err, ErrMessageTooLarge) {
				e.log.Warn("rpcenv: peer sent a frame over the limit; closing the connection", "peer", p.label(), "err", err)
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %s closed the connection", ErrDisconnected, p.label())
			} else {
				err = fmt.Errorf("%w: read from %s: %v", ErrDisconnected, p.label(), err)
			}
			p.close(err)
			return
		}
		p.recvd.Add(1)
		p.bytesIn.Add(uint64(len(frame)))
		if isData(frame) {
			granted, err := win.read(p, len(frame))
			if err != nil {
				if errors.Is(err, ErrProtocol) {
					e.protocolError(p, err)
				}
				return
			}
			if granted {
				// The Credit just queued woke this connection's writer,
				// runnable on this P behind this loop, which keeps the P
				// while frames are buffered (opening sealed ones takes a
				// while): let the writer send it now, or the peer's writer
				// runs out of window and both ends idle until it arrives.
				runtime.Gosched()
			}
		}
		owned := isChunk(frame)
		if owned {
			if frame, err = parts.add(frame, e.maxMsg); err != nil {
				e.protocolError(p, err)
				return
			}
			if frame == nil {
				continue // more pieces to come
			}
		}
		if len(frame) > e.maxMsg && !isStreamFrame(frame) { // stream frames carry bytes, not a message
			e.log.Warn("rpcenv: peer sent a message over the limit; closing the connection", "peer", p.label(), "size", len(frame), "limit", e.maxMsg)
			e.protocolError(p, fmt.Errorf("a message of %d bytes: %w (Config.MaxMessageSize is %d)", len(frame), ErrMessageTooLarge, e.maxMsg))
			return
		}
		err = decodeEnvelopeNames(frame, &env, names)
		if err == nil {
			err = e.handle(p, &env, len(frame), owned)
		}
		if err == errGoodbye {
			// Everything the peer will send has been read: closing lets
			// its Shutdown end (peerTable.leave).
			p.close(fmt.Errorf("%w: %s shut down", ErrDisconnected, p.label()))
			return
		}
		if err != nil {
			e.protocolError(p, err)
			return
		}
		if (env.Kind == kindReply || env.Kind == kindAsk) && buffered && bc.Buffered() == 0 {
			// The worker or asker this frame woke (if it woke one) is
			// runnable on this P: let it run now (BufferedConn).
			runtime.Gosched()
		}
	}
}

func (e *Env) protocolError(p *peer, err error) {
	err = fmt.Errorf("%w: %s: %w", ErrDisconnected, p.label(), err)
	e.log.Warn("rpcenv: closing connection after a protocol violation", "peer", p.label(), "err", err)
	p.close(err)
	e.broadcast(item{kind: itemNetworkError, ev: &netEvent{remote: p.label(), err: err}})
}
