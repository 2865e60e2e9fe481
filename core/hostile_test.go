package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeEnvelopeRejectsMalformedFrames(t *testing.T) {
	for name, frame := range malformedFrames(t) {
		t.Run(name, func(t *testing.T) {
			var env envelope
			err := decodeEnvelope(frame, &env)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeEnvelope(%x) = %v, want an error wrapping ErrProtocol", frame, err)
			}
		})
	}
}

func TestDecodeEnvelopeAcceptsEveryFrameKind(t *testing.T) {
	// The malformed-frame tests mean something only if the same decoder
	// accepts what encodeFrame produces.
	for _, frame := range validFrames(t) {
		var env envelope
		if err := decodeEnvelope(frame, &env); err != nil {
			t.Errorf("decodeEnvelope(%x): %v", frame, err)
		}
	}
}

// TestEnvelopeIntegersMayBeWholeFloats checks that the envelope's integer
// fields accept a float with a whole value in range, as encoders that
// write large integers as floats send them, and refuse any other float.
func TestEnvelopeIntegersMayBeWholeFloats(t *testing.T) {
	f64 := func(v float64) []byte { return binary.BigEndian.AppendUint64([]byte{0xfb}, math.Float64bits(v)) }
	f32 := func(v float32) []byte { return binary.BigEndian.AppendUint32([]byte{0xfa}, math.Float32bits(v)) }
	half := func(bits uint16) []byte { return binary.BigEndian.AppendUint16([]byte{0xf9}, bits) }
	// An Ask: kind, id, to "e", type "", body null, timeout, code "", message "".
	ask := func(kind, id, timeout []byte) []byte {
		b := append([]byte{0x88}, kind...)
		b = append(b, id...)
		b = append(b, 0x61, 'e', 0x60, 0xf6)
		b = append(b, timeout...)
		return append(b, 0x60, 0x60)
	}
	for _, c := range []struct {
		name              string
		kind, id, timeout []byte
		wantID            uint64
		wantTimeout       int64
	}{
		{"integers", []byte{0x0b}, []byte{0x07}, []byte{0x1a, 0x3b, 0x9a, 0xca, 0x00}, 7, 1e9},
		{"a double timeout over 2^32", []byte{0x0b}, []byte{0x07}, f64(5e9), 7, 5e9},
		{"a double id over 2^53", []byte{0x0b}, f64(1 << 60), []byte{0x00}, 1 << 60, 0},
		{"a single kind and a half id", f32(11), half(0x4400), f64(-3), 4, -3},
		{"negative zero", []byte{0x0b}, f64(math.Copysign(0, -1)), []byte{0x00}, 0, 0},
	} {
		var env envelope
		if err := decodeEnvelope(ask(c.kind, c.id, c.timeout), &env); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if env.Kind != kindAsk || env.ID != c.wantID || env.Timeout != c.wantTimeout {
			t.Errorf("%s: kind %d, id %d, timeout %d; want %d, %d, %d", c.name, env.Kind, env.ID, env.Timeout, kindAsk, c.wantID, c.wantTimeout)
		}
	}
	for _, c := range []struct {
		name              string
		kind, id, timeout []byte
	}{
		{"a fraction", []byte{0x0b}, f64(1.5), []byte{0x00}},
		{"a negative id", []byte{0x0b}, f64(-1), []byte{0x00}},
		{"NaN", []byte{0x0b}, []byte{0x07}, half(0x7e00)},
		{"infinity", []byte{0x0b}, []byte{0x07}, f64(math.Inf(1))},
		{"an id of 2^64", []byte{0x0b}, f64(1 << 64), []byte{0x00}},
		{"a timeout of 2^63", []byte{0x0b}, []byte{0x07}, f64(1 << 63)},
		{"a kind of 256", f64(256), []byte{0x07}, []byte{0x00}},
		{"a simple value", []byte{0x0b}, []byte{0xf5}, []byte{0x00}},
	} {
		var env envelope
		if err := decodeEnvelope(ask(c.kind, c.id, c.timeout), &env); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want an error wrapping ErrProtocol", c.name, err)
		}
	}
}

func TestDecodeBodyRejectsOverNestedAndOversizedInput(t *testing.T) {
	deep := nested(40) // deeper than maxNesting (32)
	types := []string{fuzzMsgName, "*" + fuzzMsgName, "int", "*int", "string", "bytes", "time", "*rpcenv.ref"}
	for _, typ := range types {
		if _, _, err := decodeBody(typ, deep); !errors.Is(err, ErrProtocol) {
			t.Errorf("decodeBody(%q, 40 nested arrays) = %v, want an error wrapping ErrProtocol", typ, err)
		}
	}
	// A struct nested through its own pointer field, 40 deep: every level
	// is a well-formed fuzzMsg, only the depth is too much.
	var chain *fuzzMsg
	for range 40 {
		chain = &fuzzMsg{Name: "x", Next: chain}
	}
	body, err := encMode.Marshal(chain)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeBody("*"+fuzzMsgName, body); !errors.Is(err, ErrProtocol) {
		t.Errorf("decodeBody of a fuzzMsg chain 40 deep = %v, want an error wrapping ErrProtocol", err)
	}
	// The same chain within the limit decodes: the limit, not the type, refused it.
	chain = nil
	for range 10 {
		chain = &fuzzMsg{Name: "x", Next: chain}
	}
	if body, err = encMode.Marshal(chain); err != nil {
		t.Fatal(err)
	}
	if _, _, err := decodeBody("*"+fuzzMsgName, body); err != nil {
		t.Errorf("decodeBody of a fuzzMsg chain 10 deep: %v", err)
	}

	// Headers announcing far more than the bytes present: refused before
	// anything is allocated for the announced size.
	oversized := map[string][]byte{
		"array of 2^31 elements":   {0x9a, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02},
		"array of 2^20-1 elements": {0x9a, 0x00, 0x0f, 0xff, 0xff, 0x01, 0x02},
		"array of 2^63 elements":   {0x9b, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01},
		"map of 2^31 pairs":        {0xba, 0x80, 0x00, 0x00, 0x00, 0x61, 'a', 0x01},
		"byte string of 2^31":      {0x5a, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02},
		"text string of 2^63":      {0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'},
	}
	for name, body := range oversized {
		for _, typ := range []string{fuzzMsgName, "bytes", "string", "int"} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := decodeBody(typ, body)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%s as %q: decodeBody = %v, want an error wrapping ErrProtocol", name, typ, err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("%s as %q: decodeBody allocated %d bytes", name, typ, grew)
			}
		}
	}
}

func TestDecodeBodyOfUnknownTypeNamesIt(t *testing.T) {
	for _, typ := range []string{"no.such.Type", "*no.such.Type"} {
		_, _, err := decodeBody(typ, []byte{cborNull})
		if !errors.Is(err, ErrUnregisteredType) {
			t.Fatalf("decodeBody(%q) = %v, want an error wrapping ErrUnregisteredType", typ, err)
		}
		if !strings.Contains(err.Error(), typ) {
			t.Errorf("error %q does not name the type %q", err, typ)
		}
	}
}

func TestDecodeBodyWithoutATypeMustBeNull(t *testing.T) {
	if v, _, err := decodeBody("", []byte{cborNull}); err != nil || v != nil {
		t.Fatalf("decodeBody(\"\", null) = %v, %v; want nil, nil", v, err)
	}
	for _, body := range [][]byte{{0x01}, {cborNull, cborNull}, {0x60}, {}} {
		if _, _, err := decodeBody("", body); !errors.Is(err, ErrProtocol) {
			t.Errorf("decodeBody(\"\", %x) = %v, want an error wrapping ErrProtocol", body, err)
		}
	}
}

// newTestEnv returns a client-mode env shut down when the test ends.
func newTestEnv(t *testing.T, name string, secret []byte) *Env {
	t.Helper()
	e, err := NewEnv(Config{Name: name, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func TestHandshakeWithASilentPeerGivesUpAtTheDeadline(t *testing.T) {
	for _, dialer := range []bool{false, true} {
		t.Run(map[bool]string{false: "listener", true: "dialer"}[dialer], func(t *testing.T) {
			e := newTestEnv(t, "silent", nil)
			conn := newScriptConn()
			conn.block = true // ReadFrame waits for Close
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			err := e.handshake(ctx, e.newPeer("inproc", ""), conn, dialer)
			if !errors.Is(err, ErrDisconnected) {
				t.Fatalf("handshake with a silent peer = %v, want an error wrapping ErrDisconnected", err)
			}
			if !conn.isClosed() {
				t.Fatal("the handshake gave up without closing the connection")
			}
		})
	}
}

func TestHandshakeRejectsWrongVersionAndBadNonce(t *testing.T) {
	e := newTestEnv(t, "strict", nil)
	cases := map[string]func(*hello){
		"version 99":          func(h *hello) { h.Version = 99 },
		"version 0":           func(h *hello) { h.Version = 0 },
		"3-byte nonce":        func(h *hello) { h.Nonce = []byte{1, 2, 3} },
		"no nonce":            func(h *hello) { h.Nonce = nil },
		"33-byte nonce":       func(h *hello) { h.Nonce = append(testNonce(), 0) },
		"no env id":           func(h *hello) { h.EnvID = "" },
		"65-byte env id":      func(h *hello) { h.EnvID = strings.Repeat("a", 65) },
		"the env's own id":    func(h *hello) { h.EnvID = e.id },
		"address with a path": func(h *hello) { h.Addr = "tcp://127.0.0.1:1/ep" },
		"address not a URI":   func(h *hello) { h.Addr = "127.0.0.1:1" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			h := peerHello(false)
			mutate(&h)
			frame := helloFrame(t, h)

			// Listener: refuses, and tells the dialer why with a Reject.
			conn := newScriptConn(frame)
			err := e.handshake(t.Context(), e.newPeer("inproc", ""), conn, false)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("listener: handshake = %v, want an error wrapping ErrProtocol", err)
			}
			written := conn.writtenFrames()
			if len(written) != 1 {
				t.Fatalf("listener wrote %d frames, want one Reject", len(written))
			}
			var env envelope
			if err := decodeEnvelope(written[0], &env); err != nil {
				t.Fatalf("the listener's reply does not decode: %v", err)
			}
			if env.Kind != kindReject || env.Code != "protocol" || env.Message == "" {
				t.Fatalf("listener wrote kind %d code %q message %q, want a Reject with code \"protocol\" and a reason", env.Kind, env.Code, env.Message)
			}

			// Dialer: refuses the listener's hello the same way.
			conn = newScriptConn(frame)
			err = e.handshake(t.Context(), e.newPeer("inproc", ""), conn, true)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("dialer: handshake = %v, want an error wrapping ErrProtocol", err)
			}
		})
	}

	// The well-formed hello the cases start from is accepted: each case
	// fails for its own defect.
	p := e.newPeer("inproc", "")
	if err := e.handshake(t.Context(), p, newScriptConn(helloFrame(t, peerHello(false))), false); err != nil {
		t.Fatalf("handshake with a valid hello: %v", err)
	}
}

func TestHandshakeRefusesFramesOtherThanHello(t *testing.T) {
	e := newTestEnv(t, "strict", nil)
	h := peerHello(false)
	h.EnvName = strings.Repeat("n", maxHandshakeFrame)
	oversized, err := encodeFrame(&header{kind: kindHello, typ: "rpcenv.control"}, h, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	frames := map[string][]byte{
		"a send before the handshake": mustFrame(t, &header{kind: kindSend, to: "ep", typ: "string"}, "early", 1<<20),
		"a ready before the hello":    mustFrame(t, &header{kind: kindReady, typ: "rpcenv.control"}, true, maxHandshakeFrame),
		"a hello over 4096 bytes":     oversized,
		"a hello whose body is a map": mustFrame(t, &header{kind: kindHello, typ: "rpcenv.control"}, map[string]int{"Version": 1}, maxHandshakeFrame),
		"garbage":                     {0x88, 0xff, 0x00},
	}
	for name, frame := range frames {
		for _, dialer := range []bool{false, true} {
			err := e.handshake(t.Context(), e.newPeer("inproc", ""), newScriptConn(frame), dialer)
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%s (dialer %v): handshake = %v, want an error wrapping ErrProtocol", name, dialer, err)
			}
		}
	}
}

func TestHandshakeTurnsARejectIntoItsError(t *testing.T) {
	e := newTestEnv(t, "refused", nil)
	for code, want := range map[string]error{"unauthenticated": ErrUnauthenticated, "protocol": ErrProtocol, "made-up": ErrDisconnected, "": ErrDisconnected} {
		frame := mustFrame(t, &header{kind: kindReject, code: code, message: "go away"}, nil, maxHandshakeFrame)
		err := e.handshake(t.Context(), e.newPeer("inproc", ""), newScriptConn(frame), true)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "go away") {
			t.Errorf("Reject with code %q: handshake = %v, want an error wrapping %v with the peer's message", code, err, want)
		}
	}
}

// pipeConn is one end of an in-memory connection: what one end writes the
// other reads, in order. Closing either end closes both.
type pipeConn struct {
	in, out chan []byte
	closed  chan struct{}
	once    *sync.Once
}

func newPipe() (a, b *pipeConn) {
	ab, ba := make(chan []byte, 16), make(chan []byte, 16)
	closed, once := make(chan struct{}), new(sync.Once)
	return &pipeConn{in: ba, out: ab, closed: closed, once: once},
		&pipeConn{in: ab, out: ba, closed: closed, once: once}
}

func (c *pipeConn) ReadFrame() ([]byte, error) {
	select { // frames written before Close are still read
	case f := <-c.in:
		return f, nil
	default:
	}
	select {
	case f := <-c.in:
		return f, nil
	case <-c.closed:
		return nil, io.EOF
	}
}

func (c *pipeConn) WriteFrames(frames [][]byte) error {
	for _, frame := range frames {
		select {
		case <-c.closed:
			return net.ErrClosed
		default:
		}
		select {
		case c.out <- append([]byte(nil), frame...):
		case <-c.closed:
			return net.ErrClosed
		}
	}
	return nil
}

func (c *pipeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *pipeConn) RemoteAddr() string { return "pipe" }

type handshakeResult struct {
	p   *peer
	err error
}

// handshakePair runs dialer d against listener l over a pipe. Like the env
// (dial, accept), it closes the connection when a side fails.
func handshakePair(t *testing.T, d, l *Env) (dr, lr handshakeResult) {
	t.Helper()
	dc, lc := newPipe()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a hang fails instead of blocking
	defer cancel()
	done := make(chan handshakeResult)
	go func() {
		p := l.newPeer("inproc", "")
		err := l.handshake(ctx, p, lc, false)
		if err != nil {
			lc.Close()
		}
		done <- handshakeResult{p, err}
	}()
	p := d.newPeer("inproc", "inproc://listener")
	err := d.handshake(ctx, p, dc, true)
	if err != nil {
		dc.Close()
	}
	dr = handshakeResult{p, err}
	lr = <-done
	dc.Close()
	return dr, lr
}

func TestHandshakeSecretMismatchIsUnauthenticated(t *testing.T) {
	t.Run("different secrets", func(t *testing.T) {
		d, l := newTestEnv(t, "dialer", []byte("a")), newTestEnv(t, "listener", []byte("b"))
		dr, lr := handshakePair(t, d, l)
		if !errors.Is(dr.err, ErrUnauthenticated) {
			t.Errorf("dialer: %v, want an error wrapping ErrUnauthenticated", dr.err)
		}
		if lr.err == nil {
			t.Error("listener: the handshake succeeded with a dialer of another secret")
		}
		if dr.p.remoteID != "" || lr.p.remoteID != "" {
			t.Errorf("a refused handshake set remote ids %q, %q", dr.p.remoteID, lr.p.remoteID)
		}
	})
	t.Run("dialer without a secret", func(t *testing.T) {
		d, l := newTestEnv(t, "dialer", nil), newTestEnv(t, "listener", []byte("b"))
		dr, lr := handshakePair(t, d, l)
		if !errors.Is(dr.err, ErrUnauthenticated) || !errors.Is(lr.err, ErrUnauthenticated) {
			t.Errorf("dialer: %v; listener: %v; want both to wrap ErrUnauthenticated", dr.err, lr.err)
		}
	})
	t.Run("listener without a secret", func(t *testing.T) {
		d, l := newTestEnv(t, "dialer", []byte("a")), newTestEnv(t, "listener", nil)
		dr, lr := handshakePair(t, d, l)
		if !errors.Is(dr.err, ErrUnauthenticated) || !errors.Is(lr.err, ErrUnauthenticated) {
			t.Errorf("dialer: %v; listener: %v; want both to wrap ErrUnauthenticated", dr.err, lr.err)
		}
	})
	for name, secret := range map[string][]byte{"same secret": []byte("s3cret"), "no secret": nil} {
		t.Run(name, func(t *testing.T) {
			d, l := newTestEnv(t, "dialer", secret), newTestEnv(t, "listener", secret)
			dr, lr := handshakePair(t, d, l)
			if dr.err != nil || lr.err != nil {
				t.Fatalf("dialer: %v; listener: %v; want both nil", dr.err, lr.err)
			}
			if dr.p.remoteID != l.id || dr.p.remoteName != "listener" {
				t.Errorf("dialer sees %q (%s), want %q (listener)", dr.p.remoteID, dr.p.remoteName, l.id)
			}
			if lr.p.remoteID != d.id || lr.p.remoteName != "dialer" {
				t.Errorf("listener sees %q (%s), want %q (dialer)", lr.p.remoteID, lr.p.remoteName, d.id)
			}
		})
	}
}

// TestHandshakeListenerRefusesABadProof plays a dialer that has no secret
// but claims one: it sends a made-up proof, then the listener's own proof
// reflected back. The listener must refuse both and say why.
func TestHandshakeListenerRefusesABadProof(t *testing.T) {
	l := newTestEnv(t, "listener", []byte("s3cret"))
	for _, reflect := range []bool{false, true} {
		dc, lc := newPipe()
		done := make(chan error)
		go func() {
			err := l.handshake(t.Context(), l.newPeer("inproc", ""), lc, false)
			done <- err
		}()
		if err := dc.WriteFrames([][]byte{helloFrame(t, peerHello(true))}); err != nil {
			t.Fatal(err)
		}
		var theirs hello
		if err := readControl(dc, kindHello, &theirs); err != nil {
			t.Fatalf("reading the listener's hello: %v", err)
		}
		proofBody := bytes.Repeat([]byte{0x01}, 32)
		if reflect {
			proofBody = theirs.Proof
		}
		if err := dc.WriteFrames([][]byte{mustFrame(t, &header{kind: kindProof, typ: "rpcenv.control"}, proofBody, maxHandshakeFrame)}); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("reflected %v: listener handshake = %v, want an error wrapping ErrUnauthenticated", reflect, err)
		}
		var ok bool
		if err := readControl(dc, kindReady, &ok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("reflected %v: the dialer read %v, want a Reject wrapping ErrUnauthenticated", reflect, err)
		}
		dc.Close()
	}
}

func TestHandshakeDialerRefusesAListenerWithoutProof(t *testing.T) {
	d := newTestEnv(t, "dialer", []byte("s3cret"))
	noProof := peerHello(true)
	badProof := peerHello(true)
	badProof.Proof = bytes.Repeat([]byte{0x01}, 32)
	for name, h := range map[string]hello{"no proof": noProof, "a made-up proof": badProof, "no secret": peerHello(false)} {
		conn := newScriptConn(helloFrame(t, h))
		err := d.handshake(t.Context(), d.newPeer("inproc", ""), conn, true)
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: handshake = %v, want an error wrapping ErrUnauthenticated", name, err)
		}
		// The dialer wrote its hello and nothing else: no proof of its own
		// to a listener that did not prove the secret.
		if w := conn.writtenFrames(); len(w) != 1 {
			t.Errorf("%s: the dialer wrote %d frames, want only its hello", name, len(w))
		}
	}
}
