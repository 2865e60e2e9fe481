package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
)

// Frame kinds. docs/PROTOCOL.md is the specification; keep it in step.
const (
	kindHello  = 1  // handshake: who I am, my nonce, my proof
	kindProof  = 2  // handshake: the dialer's proof of the secret
	kindReady  = 3  // handshake: the listener accepts the connection
	kindReject = 4  // handshake: the listener refuses (code, message)
	kindSend   = 10 // one-way message to endpoint To
	kindAsk    = 11 // request ID to endpoint To; Timeout is the asker's remaining time in ns
	kindReply  = 12 // answer to request ID
	kindFail   = 13 // failure of request ID (Code, Message, To = the endpoint that failed)
	kindCancel = 14 // the asker gave up on request ID
	kindLookup = 15 // does endpoint To exist? answered by Reply (body true) or Fail
)

// protocolVersion is carried in Hello; envs refuse a peer of another version.
const protocolVersion = 1

const cborNull = 0xf6

// envelopeFields is the number of elements of every frame's CBOR array.
const envelopeFields = 8

// envelope is a decoded frame: the CBOR array
// [kind, id, to, type, body, timeout, code, message].
type envelope struct {
	_       struct{} `cbor:",toarray"`
	Kind    uint8
	ID      uint64
	To      string
	Type    string
	Body    cbor.RawMessage
	Timeout int64
	Code    string
	Message string
}

// decodeEnvelope parses one frame into env, reusing env.Body's storage.
func decodeEnvelope(frame []byte, env *envelope) error {
	body := env.Body[:0]
	*env = envelope{Body: body}
	if len(frame) == 0 || frame[0] != 0x80|envelopeFields {
		return fmt.Errorf("%w: a frame must be a CBOR array of %d elements", ErrProtocol, envelopeFields)
	}
	if err := decMode.Unmarshal(frame, env); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if len(env.Body) == 0 {
		return fmt.Errorf("%w: frame without a body", ErrProtocol)
	}
	return nil
}

// header is everything of a frame but its body.
type header struct {
	kind    uint8
	id      uint64
	to      string
	typ     string // wire type name of the body, "" for nil
	timeout int64
	code    string
	message string
}

// encodeFrame encodes h and body (a value of wire type h.typ, encoded with
// the shared CBOR mode) into a new frame, failing with ErrMessageTooLarge
// when it exceeds limit. The returned slice is the caller's to give away.
// Allocations: the final frame, plus what the CBOR encoder needs for body.
func encodeFrame(h *header, body any, limit int) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	var tmp [16]byte
	buf.WriteByte(0x80 | envelopeFields)
	buf.Write(appendUint(tmp[:0], 0, uint64(h.kind)))
	buf.Write(appendUint(tmp[:0], 0, h.id))
	writeText(buf, h.to)
	writeText(buf, h.typ)
	var err error
	if body == nil {
		buf.WriteByte(cborNull)
	} else {
		err = encMode.MarshalToBuffer(body, buf)
	}
	var frame []byte
	if err == nil {
		buf.Write(appendInt(tmp[:0], h.timeout))
		writeText(buf, h.code)
		writeText(buf, h.message)
		if buf.Len() > limit {
			err = fmt.Errorf("%w: %d bytes encoded, the limit (Config.MaxMessageSize) is %d", ErrMessageTooLarge, buf.Len(), limit)
		} else {
			frame = make([]byte, buf.Len())
			copy(frame, buf.Bytes())
		}
	} else {
		err = fmt.Errorf("encode %s: %w", h.typ, err)
	}
	if buf.Cap() <= maxPooledBuf {
		bufPool.Put(buf)
	}
	return frame, err
}

func writeText(buf *bytes.Buffer, s string) {
	var tmp [9]byte
	buf.Write(appendUint(tmp[:0], 3, uint64(len(s))))
	buf.WriteString(s)
}

func appendUint(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		return appendUint(b, 0, uint64(n))
	}
	return appendUint(b, 1, uint64(-(n + 1)))
}

func appendText(b []byte, s string) []byte {
	b = appendUint(b, 3, uint64(len(s)))
	return append(b, s...)
}
