package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/rpcenv/rpcenv/cborgen"
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
	kindLookup = 15 // does endpoint To exist? answered by Reply (body: its ref) or Fail
	kindBeat   = 16 // heartbeat: nothing to do but notice the peer is alive
	kindChunk  = 17 // a piece of a large frame, more to come (a chunk frame, not an envelope)
	kindLast   = 18 // the last piece of a large frame (a chunk frame)
	kindCredit = 19 // flow control: ID more bytes of credit for endpoint To

	// Streams (stream.go, streamconn.go). A stream frame's ID is the
	// stream's open ID times two, plus one when its sender opened the
	// stream.
	kindOpen         = 20 // opens stream ID to endpoint To with the body; answered by Reply (accepted) or Fail
	kindStreamData   = 21 // stream bytes: the body is a CBOR byte string
	kindStreamCredit = 22 // stream flow control: the body is the bytes of credit added
	kindStreamEnd    = 23 // the sender half-closed the stream
	kindStreamReset  = 24 // the sender aborted the stream (Code, Message)
	kindStreamStop   = 25 // the sender reads no more: the receiver's writes fail, and it answers with a reset

	kindGoodbye = 26 // the sender is shutting down and sent all it will: the receiver closes the connection
)

// protocolVersion is carried in Hello; envs refuse a peer of another version.
const protocolVersion = 2

const cborNull = 0xf6

// envelopeFields is the number of elements of a frame's CBOR array; a
// Send, Ask or Open with headers has one more (withHeaders).
const (
	envelopeFields = 8
	withHeaders    = 9
)

// envelope is a decoded frame: the CBOR array
// [kind, id, to, type, body, timeout, code, message], and for a Send, Ask
// or Open, optionally a ninth element: its headers, a map of text to text.
type envelope struct {
	Kind    uint8
	ID      uint64
	To      string
	Type    string
	Body    []byte // the body's CBOR item, a sub-slice of the frame: valid as long as the frame
	Timeout int64
	Code    string
	Message string
	Headers map[string]string // nil when the frame has none
}

// decodeEnvelope parses one frame into env. It is written by hand for the
// fixed layout: no reflection, and no allocation but the To string (and
// Code and Message, which are usually empty). The body is only delimited
// here; decodeBody decodes it, with the decoder's limits.
func decodeEnvelope(frame []byte, env *envelope) error {
	return decodeEnvelopeNames(frame, env, nil)
}

// names interns the endpoint names a connection's frames carry, so that
// decoding To allocates only the first time a name is seen. It belongs to
// one read loop.
type names map[string]string

func (n names) intern(b []byte) string {
	if s, ok := n[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(n) < 4096 { // bounded: a peer may send any names
		n[s] = s
	}
	return s
}

// decodeEnvelopeNames is decodeEnvelope with To interned in n (if not nil).
func decodeEnvelopeNames(frame []byte, env *envelope, n names) error {
	*env = envelope{}
	d := frameReader{b: frame}
	if len(frame) == 0 || (frame[0] != 0x80|envelopeFields && frame[0] != 0x80|withHeaders) {
		return d.fail("a frame must be a CBOR array of %d elements (%d with headers)", envelopeFields, withHeaders)
	}
	d.off = 1
	kind, ok := d.uint()
	if !ok || kind > math.MaxUint8 {
		return d.fail("bad kind")
	}
	env.Kind = uint8(kind)
	if env.ID, ok = d.uint(); !ok {
		return d.fail("bad id")
	}
	to, ok := d.text()
	if !ok {
		return d.fail("bad target")
	}
	typ, ok := d.text()
	if !ok {
		return d.fail("bad type")
	}
	start := d.off
	if !d.skip(0) {
		return d.fail("bad body")
	}
	env.Body = frame[start:d.off:d.off]
	if env.Timeout, ok = d.int(); !ok {
		return d.fail("bad timeout")
	}
	code, ok := d.text()
	if !ok {
		return d.fail("bad code")
	}
	msg, ok := d.text()
	if !ok {
		return d.fail("bad message")
	}
	if frame[0] == 0x80|withHeaders {
		if env.Kind != kindSend && env.Kind != kindAsk && env.Kind != kindOpen {
			return d.fail("a frame of kind %d has no headers", env.Kind)
		}
		if env.Headers, ok = d.headers(); !ok {
			return d.fail("bad headers")
		}
		if err := checkHeaders(env.Headers); err != nil {
			return d.fail("%v", err)
		}
	}
	if d.off != len(frame) {
		return d.fail("%d bytes after the envelope", len(frame)-d.off)
	}
	if n != nil {
		env.To = n.intern(to)
	} else {
		env.To = string(to)
	}
	env.Type = internType(typ)
	if len(code) > 0 {
		env.Code = string(code)
	}
	if len(msg) > 0 {
		env.Message = string(msg)
	}
	return nil
}

// internType returns the registered name equal to b without allocating,
// or a new string for a name this program does not know.
func internType(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if r := reg.Load(); r != nil {
		name := b
		if name[0] == '*' {
			name = name[1:]
		}
		if mt, ok := r.byName[string(name)]; ok {
			if name[0] != b[0] {
				return mt.ptrName
			}
			return mt.name
		}
	}
	return string(b)
}

// frameReader reads the CBOR items of an envelope.
type frameReader struct {
	b   []byte
	off int
}

func (d *frameReader) fail(format string, args ...any) error {
	return fmt.Errorf("%w: malformed frame at byte %d: %s", ErrProtocol, d.off, fmt.Sprintf(format, args...))
}

// head reads an item's initial byte and argument. Indefinite lengths and
// reserved values are refused.
func (d *frameReader) head() (major byte, arg uint64, ok bool) {
	major, _, arg, ok = d.head2()
	return major, arg, ok
}

func (d *frameReader) head2() (major, info byte, arg uint64, ok bool) {
	major, info, arg, d.off, ok = readHead(d.b, d.off)
	return major, info, arg, ok
}

// readHead reads the CBOR item head at b[off]: its major type, its
// additional information, its argument and the offset after it.
// Indefinite lengths (31) and reserved values (28 to 30) are refused.
func readHead(b []byte, off int) (major, info byte, arg uint64, next int, ok bool) {
	if off >= len(b) {
		return 0, 0, 0, off, false
	}
	ib := b[off]
	off++
	major, info = ib>>5, ib&0x1f
	n := 0
	switch {
	case info < 24:
		return major, info, uint64(info), off, true
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default:
		return 0, 0, 0, off, false
	}
	if len(b)-off < n {
		return 0, 0, 0, off, false
	}
	for _, c := range b[off : off+n] {
		arg = arg<<8 | uint64(c)
	}
	return major, info, arg, off + n, true
}

// uint reads an unsigned integer, or a float with a whole value in
// uint64's range (docs/PROTOCOL.md, "The envelope": some encoders write
// large integers as floats).
func (d *frameReader) uint() (uint64, bool) {
	major, info, arg, ok := d.head2()
	switch {
	case !ok:
		return 0, false
	case major == 0:
		return arg, true
	case major == 7 && info >= 25 && info <= 27:
		f := floatOf(info, arg)
		if f >= 0 && f < 1<<64 && f == math.Trunc(f) {
			return uint64(f), true
		}
	}
	return 0, false
}

// int reads an integer, or a float with a whole value in int64's range.
func (d *frameReader) int() (int64, bool) {
	major, info, arg, ok := d.head2()
	if !ok {
		return 0, false
	}
	switch {
	case major == 0 && arg <= math.MaxInt64:
		return int64(arg), true
	case major == 1 && arg <= math.MaxInt64:
		return -1 - int64(arg), true
	case major == 7 && info >= 25 && info <= 27:
		f := floatOf(info, arg)
		if f >= -(1<<63) && f < 1<<63 && f == math.Trunc(f) {
			return int64(f), true
		}
	}
	return 0, false
}

// headers reads a non-empty map of text to text without duplicate keys
// (the limits are checkHeaders').
func (d *frameReader) headers() (map[string]string, bool) {
	major, n, ok := d.head()
	if !ok || major != 5 || n == 0 || n > maxHeaders {
		return nil, false
	}
	h := make(map[string]string, n)
	for range n {
		k, ok := d.text()
		if !ok {
			return nil, false
		}
		v, ok := d.text()
		if !ok {
			return nil, false
		}
		if _, dup := h[string(k)]; dup {
			return nil, false
		}
		h[string(k)] = string(v)
	}
	return h, true
}

// floatOf returns the value of a float item: a half (info 25), single
// (26) or double (27) float whose bits are arg.
func floatOf(info byte, arg uint64) float64 {
	switch info {
	case 25:
		return float64(cborgen.Float16(uint16(arg)))
	case 26:
		return float64(math.Float32frombits(uint32(arg)))
	}
	return math.Float64frombits(arg)
}

// text returns a definite-length, valid UTF-8 text string, aliasing the frame.
func (d *frameReader) text() ([]byte, bool) {
	major, n, ok := d.head()
	if !ok || major != 3 || n > uint64(len(d.b)-d.off) {
		return nil, false
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s, utf8.Valid(s)
}

// skip moves past one well-formed data item, nested at most maxNesting
// deep. Every element costs at least one byte, so a count that the frame
// cannot hold fails as soon as the bytes run out.
func (d *frameReader) skip(depth int) bool {
	if depth > maxNesting {
		return false
	}
	major, info, arg, ok := d.head2()
	if !ok {
		return false
	}
	switch major {
	case 0, 1:
		return true
	case 2, 3:
		if arg > uint64(len(d.b)-d.off) {
			return false
		}
		d.off += int(arg)
		return true
	case 4, 5:
		if arg > uint64(len(d.b)-d.off) {
			return false
		}
		items := arg
		if major == 5 {
			items *= 2
		}
		for range items {
			if !d.skip(depth + 1) {
				return false
			}
		}
		return true
	case 6:
		return d.skip(depth + 1)
	default: // 7: simple values and floats; the argument was the payload
		return info != 24 || arg >= 32 // a two-byte simple value below 32 is not well-formed
	}
}

// header is everything of a frame but its body.
type header struct {
	kind    uint8
	id      uint64
	to      string
	typ     string   // wire type name of the body, "" for nil
	mt      *msgType // typ's registration, when the caller has it (for its compiled codec)
	timeout int64
	code    string
	message string
	headers map[string]string // checked (checkHeaders); only for a Send, Ask or Open
}

// encodeFrame encodes h and body (a value of wire type h.typ, encoded with
// the shared CBOR mode) into a new frame, failing with ErrMessageTooLarge
// when it exceeds limit. The returned slice is the caller's to give away.
// Allocations: the final frame, plus what the CBOR encoder needs for body
// (nothing for a type with a generated codec).
func encodeFrame(h *header, body any, limit int) ([]byte, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	var tmp [16]byte
	if len(h.headers) > 0 {
		buf.WriteByte(0x80 | withHeaders)
	} else {
		buf.WriteByte(0x80 | envelopeFields)
	}
	buf.Write(appendUint(tmp[:0], 0, uint64(h.kind)))
	buf.Write(appendUint(tmp[:0], 0, h.id))
	writeText(buf, h.to)
	writeText(buf, h.typ)
	var err error
	if body == nil {
		buf.WriteByte(cborNull)
	} else if h.mt == nil || h.mt.encode == nil || !h.mt.encode(buf, body) {
		// Not a type with a generated codec (gencodec.go), which writes
		// the same bytes as the library.
		err = encMode.MarshalToBuffer(body, buf)
	}
	var frame []byte
	if err == nil {
		buf.Write(appendInt(tmp[:0], h.timeout))
		writeText(buf, h.code)
		writeText(buf, h.message)
		if len(h.headers) > 0 {
			writeHeaders(buf, h.headers)
		}
		if buf.Len() > limit {
			err = fmt.Errorf("%w: %d bytes encoded, the limit (Config.MaxMessageSize) is %d; send more through a stream (Ref.OpenStream)", ErrMessageTooLarge, buf.Len(), limit)
		} else {
			frame = newFrame(buf.Len())
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

// writeHeaders writes h as a CBOR map, its keys in the canonical order
// (shorter first, then bytewise), as the library writes a map.
func writeHeaders(buf *bytes.Buffer, h map[string]string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	var tmp [9]byte
	buf.Write(appendUint(tmp[:0], 5, uint64(len(keys))))
	for _, k := range keys {
		writeText(buf, k)
		writeText(buf, h[k])
	}
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

// Frame memory is recycled through free lists by size class: a transport
// that hands written frames back with ReleaseFrame saves the env an
// allocation per message. The lists are channels, so that putting a slice
// back allocates nothing. Large classes keep few frames, so the memory
// held stays bounded (at most about 14 MiB, all classes full); a large
// frame that is not recycled is a fresh allocation of the heap, which
// costs page faults and GC work far beyond the copy.
var frameClasses = [...]struct{ size, keep int }{
	{256, 256},
	{1 << 10, 256},
	{4 << 10, 256},
	{16 << 10, 128},
	{64 << 10, 32},
	{128 << 10, 16},
	{256 << 10, 8},
	{1 << 20, 4},
}

var freeFrames [len(frameClasses)]chan []byte

func init() {
	for i, c := range frameClasses {
		freeFrames[i] = make(chan []byte, c.keep)
	}
}

// newFrame returns a frame of n bytes, reused when one is free.
func newFrame(n int) []byte {
	for i, c := range frameClasses {
		if n <= c.size {
			select {
			case b := <-freeFrames[i]:
				return b[:n]
			default:
				return make([]byte, n, c.size)
			}
		}
	}
	return make([]byte, n)
}

// ReleaseFrame gives the memory of a frame back to the env that wrote it.
// A Transport may call it once it no longer needs a frame it got from
// Conn.WriteFrame (after writing it out, or after the reader is done with
// it); it must not touch the frame afterwards. Calling it is optional, and
// frames of any other origin are ignored.
func releaseFrame(frame []byte) {
	n := cap(frame)
	for i, c := range frameClasses {
		if n == c.size {
			select {
			case freeFrames[i] <- frame[:0]:
			default:
			}
			return
		}
	}
}

// maxFrame is the largest frame the env writes or accepts: a chunk frame
// with a full piece (docs/PROTOCOL.md).
const maxFrame = 64<<10 + 64

// chunkHeadMax is the most a chunk frame adds to its piece: the array
// head, the kind, the id (up to 9 bytes), the total (up to 9) and the
// byte string's head (up to 9).
const chunkHeadMax = 1 + 1 + 9 + 9 + 9

// appendChunk appends a chunk frame to b: the CBOR array [kind, id,
// piece], or, when total is not 0 (a frame's first chunk), [kind, id,
// total, piece], total being the length of the whole frame.
func appendChunk(b []byte, id uint64, last bool, piece []byte, total int) []byte {
	kind := uint64(kindChunk)
	if last {
		kind = kindLast
	}
	if total > 0 {
		b = append(b, 0x84)
	} else {
		b = append(b, 0x83)
	}
	b = appendUint(b, 0, kind)
	b = appendUint(b, 0, id)
	if total > 0 {
		b = appendUint(b, 0, uint64(total))
	}
	b = appendUint(b, 2, uint64(len(piece)))
	return append(b, piece...)
}

// isChunk reports whether frame is a chunk frame rather than an envelope.
func isChunk(frame []byte) bool { return len(frame) > 0 && (frame[0] == 0x83 || frame[0] == 0x84) }

// decodeChunk parses a chunk frame. piece aliases frame; total is the
// whole frame's length when the chunk announces it, else 0.
func decodeChunk(frame []byte) (id uint64, last bool, total uint64, piece []byte, err error) {
	d := frameReader{b: frame, off: 1}
	kind, ok := d.uint()
	if !ok || (kind != kindChunk && kind != kindLast) {
		return 0, false, 0, nil, d.fail("a chunk frame's kind must be %d or %d", kindChunk, kindLast)
	}
	if id, ok = d.uint(); !ok || id == 0 {
		return 0, false, 0, nil, d.fail("bad chunk id")
	}
	if frame[0] == 0x84 {
		if total, ok = d.uint(); !ok || total == 0 {
			return 0, false, 0, nil, d.fail("bad chunk total")
		}
	}
	major, n, ok := d.head()
	if !ok || major != 2 || n != uint64(len(frame)-d.off) {
		return 0, false, 0, nil, d.fail("a chunk's piece must be a byte string ending the frame")
	}
	if n == 0 && kind == kindChunk {
		return 0, false, 0, nil, d.fail("empty chunk")
	}
	return id, kind == kindLast, total, frame[d.off:], nil
}
