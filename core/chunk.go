package core

import "fmt"

// reassembly joins the chunks of the large frames a peer is sending
// (docs/PROTOCOL.md, "Chunks"). It belongs to the connection's read loop.
// What it holds is bounded: at most maxChunking frames at once, each at
// most MaxMessageSize, and a peer must send the bytes to make it grow.
type reassembly map[uint64][]byte

// add takes a chunk frame. It returns the whole frame when this was its
// last piece (the frame is then the caller's), nil when more are to come,
// and an error when the peer broke the protocol.
func (r *reassembly) add(chunk []byte, limit int) ([]byte, error) {
	id, last, piece, err := decodeChunk(chunk)
	if err != nil {
		return nil, err
	}
	if *r == nil {
		*r = reassembly{}
	}
	buf, ok := (*r)[id]
	if !ok && len(*r) >= maxChunking {
		return nil, fmt.Errorf("%w: more than %d chunked frames at once", ErrProtocol, maxChunking)
	}
	if len(buf)+len(piece) > limit {
		return nil, fmt.Errorf("%w: a chunked frame grew past %d bytes (Config.MaxMessageSize): %w", ErrProtocol, limit, ErrMessageTooLarge)
	}
	if len(buf)+len(piece) > cap(buf) {
		// Double, from two pieces, never past the limit: the copies add
		// up to at most the frame's length again, and the peer must send
		// the bytes to make the buffer grow.
		grown := make([]byte, len(buf), min(max(2*cap(buf), 2*chunkPiece, len(buf)+len(piece)), limit))
		copy(grown, buf)
		buf = grown
	}
	buf = append(buf, piece...)
	if !last {
		(*r)[id] = buf
		return nil, nil
	}
	delete(*r, id)
	if isChunk(buf) {
		return nil, fmt.Errorf("%w: a chunked frame that is itself a chunk", ErrProtocol)
	}
	return buf, nil
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
	msg, mt, err := decodeBodyOf(d.typ, d.body, true)
	if err != nil {
		return nil, err
	}
	e.bind(msg, mt)
	return msg, nil
}
