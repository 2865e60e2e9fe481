package core

import "fmt"

// reassembly joins the chunks of the large frames a peer is sending
// (docs/PROTOCOL.md, "Chunks"). It belongs to the connection's read loop.
// What it holds is bounded: at most maxChunking frames at once, each at
// most MaxMessageSize, and a peer must send the bytes to make it grow
// past maxReserve.
type reassembly map[uint64]partial

// partial is a frame being joined: its bytes so far, and the length its
// first chunk announced (0 if none).
type partial struct {
	buf   []byte
	total int
}

// maxReserve is the most an announced total makes the receiver allocate
// before the bytes arrive.
const maxReserve = 1 << 20

// add takes a chunk frame. It returns the whole frame when this was its
// last piece (the frame is then the caller's), nil when more are to come,
// and an error when the peer broke the protocol. A frame whose total was
// announced is joined in a buffer of exactly that size, allocated once up
// to maxReserve; without a total the buffer doubles as pieces arrive.
func (r *reassembly) add(chunk []byte, limit int) ([]byte, error) {
	id, last, total, piece, err := decodeChunk(chunk)
	if err != nil {
		return nil, err
	}
	if *r == nil {
		*r = reassembly{}
	}
	p, ok := (*r)[id]
	if !ok && len(*r) >= maxChunking {
		return nil, fmt.Errorf("%w: more than %d chunked frames at once", ErrProtocol, maxChunking)
	}
	if total > 0 {
		switch {
		case ok:
			return nil, fmt.Errorf("%w: a chunk announces a total after its frame's first chunk", ErrProtocol)
		case total > uint64(limit):
			return nil, fmt.Errorf("%w: a chunked frame announces %d bytes, over %d (Config.MaxMessageSize): %w", ErrProtocol, total, limit, ErrMessageTooLarge)
		}
		p.total = int(total)
		p.buf = make([]byte, 0, min(p.total, maxReserve))
	}
	n := len(p.buf) + len(piece)
	switch {
	case n > limit:
		return nil, fmt.Errorf("%w: a chunked frame grew past %d bytes (Config.MaxMessageSize): %w", ErrProtocol, limit, ErrMessageTooLarge)
	case p.total > 0 && n > p.total:
		return nil, fmt.Errorf("%w: a chunked frame grew past the %d bytes its first chunk announced", ErrProtocol, p.total)
	}
	if n > cap(p.buf) {
		// Double, never past the limit or the total: the copies add up
		// to at most the frame's length again, and the peer must send
		// the bytes to make the buffer grow.
		c := min(max(2*cap(p.buf), 2*chunkPiece, n), limit)
		if p.total > 0 {
			c = min(max(2*cap(p.buf), n), p.total)
		}
		grown := make([]byte, len(p.buf), c)
		copy(grown, p.buf)
		p.buf = grown
	}
	p.buf = append(p.buf, piece...)
	if !last {
		(*r)[id] = p
		return nil, nil
	}
	delete(*r, id)
	if p.total > 0 && len(p.buf) != p.total {
		return nil, fmt.Errorf("%w: a chunked frame of %d bytes, where its first chunk announced %d", ErrProtocol, len(p.buf), p.total)
	}
	if isChunk(p.buf) {
		return nil, fmt.Errorf("%w: a chunked frame that is itself a chunk", ErrProtocol)
	}
	return p.buf, nil
}

// deferred is a message that arrived in chunks, handed on undecoded: the
// worker (or, for a reply, the asker) decodes it, so that decoding a
// large body never holds the connection's read loop. It owns its frame,
// which nothing reuses: the decoded value's large []byte fields may refer
// to it (msgType.decodeOwned).
type deferred struct {
	typ  string
	body []byte
	lent bool // body is a pooled frame, given back by done (WithBorrowedBytes)
}

// done is called once the handler of the decoded message returned: a lent
// body goes back to the free lists, and the message's borrowed bytes with
// it.
func (d *deferred) done() {
	if d.lent {
		releaseFrame(d.body)
		d.body, d.lent = nil, false
	}
}

func (d *deferred) decode(e *Env) (any, error) {
	msg, _, err := decodeMessage(e, d.typ, d.body, true)
	if err != nil {
		return nil, err
	}
	return msg, nil
}
