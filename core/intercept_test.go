package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestHeadersOnTheWire: headers encode as the envelope's ninth element,
// a map with its keys in canonical order, and decode back.
func TestHeadersOnTheWire(t *testing.T) {
	h := map[string]string{"bb": "2", "a": "1", "ccc": "3"}
	frame, err := encodeFrame(&header{kind: kindSend, to: "x", typ: "string", headers: h}, "hi", maxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if frame[0] != 0x89 {
		t.Fatalf("a frame with headers starts with %#x, want 0x89", frame[0])
	}
	// The map: 3 pairs, keys shorter first.
	want := []byte{0xa3, 0x61, 'a', 0x61, '1', 0x62, 'b', 'b', 0x61, '2', 0x63, 'c', 'c', 'c', 0x61, '3'}
	if !bytes.HasSuffix(frame, want) {
		t.Fatalf("frame % x does not end with the canonical map % x", frame, want)
	}
	var env envelope
	if err := decodeEnvelope(frame, &env); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(env.Headers) != fmt.Sprint(h) {
		t.Fatalf("decoded headers %v, want %v", env.Headers, h)
	}
	plain, err := encodeFrame(&header{kind: kindSend, to: "x", typ: "string"}, "hi", maxFrame)
	if err != nil {
		t.Fatal(err)
	}
	if plain[0] != 0x88 {
		t.Fatalf("a frame without headers starts with %#x, want 0x88", plain[0])
	}
	if err := decodeEnvelope(plain, &env); err != nil || env.Headers != nil {
		t.Fatalf("a frame without headers: %v, headers %v", err, env.Headers)
	}
}

// TestHostileHeadersBreakTheProtocol: a peer that sends headers outside
// the rules breaks the protocol; the frame is refused with ErrProtocol.
func TestHostileHeadersBreakTheProtocol(t *testing.T) {
	// frame builds a 9-element envelope of kind k with the given map bytes.
	frame := func(k byte, m []byte) []byte {
		b := []byte{0x89, k, 0x00, 0x61, 'x', 0x60, 0xf6, 0x00, 0x60, 0x60}
		return append(b, m...)
	}
	text := func(s string) []byte { return append(appendUint(nil, 3, uint64(len(s))), s...) }
	pairs := func(n int, k func(i int) string, v func(i int) string) []byte {
		m := appendUint(nil, 5, uint64(n))
		for i := range n {
			m = append(m, text(k(i))...)
			m = append(m, text(v(i))...)
		}
		return m
	}
	one := func(k, v string) []byte {
		return pairs(1, func(int) string { return k }, func(int) string { return v })
	}
	ok := one("k", "v")
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"headers on a Reply", frame(kindReply, ok)},
		{"headers on a Fail", frame(kindFail, ok)},
		{"an empty map", frame(kindSend, []byte{0xa0})},
		{"not a map", frame(kindSend, []byte{0x80})},
		{"33 headers", frame(kindSend, pairs(33, func(i int) string { return fmt.Sprint("k", i) }, func(int) string { return "v" }))},
		{"a duplicate key", frame(kindSend, append([]byte{0xa2}, append(append(text("k"), text("1")...), append(text("k"), text("2")...)...)...))},
		{"an upper-case key", frame(kindAsk, one("K", "v"))},
		{"a key with a space", frame(kindAsk, one("a b", "v"))},
		{"a 65-byte key", frame(kindAsk, one(strings.Repeat("k", 65), "v"))},
		{"a 4097-byte value", frame(kindOpen, one("k", strings.Repeat("v", 4097)))},
		{"a value that is not text", frame(kindSend, append(append([]byte{0xa1}, text("k")...), 0x01))},
		{"a value that is not UTF-8", frame(kindSend, one("k", "\xff"))},
		{"more than 8192 bytes", frame(kindSend, pairs(3, func(i int) string { return fmt.Sprint("k", i) }, func(int) string { return strings.Repeat("v", 2729) }))},
		{"bytes after the headers", append(frame(kindSend, ok), 0x00)},
	} {
		var env envelope
		if err := decodeEnvelope(c.frame, &env); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v; want ErrProtocol", c.name, err)
		}
	}
	var env envelope
	if err := decodeEnvelope(frame(kindSend, ok), &env); err != nil || env.Headers["k"] != "v" {
		t.Fatalf("a valid frame of the same shape: %v, %v", err, env.Headers)
	}
}

type streamEcho struct{}

func (streamEcho) Receive(c *Context, msg any) error { return nil }
func (streamEcho) ReceiveStream(c *Context, msg any, s *Stream) error {
	_, err := io.Copy(s, s)
	if err != nil {
		return err
	}
	return s.CloseWrite()
}

// TestInterceptorsSeeStreams: OpenStream passes through the outbound
// interceptors as a stream call, whose result is the *Stream, and its
// opening message through the inbound ones, with the headers.
func TestInterceptorsSeeStreams(t *testing.T) {
	out := make(chan string, 1)
	in := make(chan string, 1)
	e, err := NewEnv(Config{
		OutboundInterceptors: []OutboundInterceptor{func(ctx context.Context, call *Call, next Invoker) (any, error) {
			call.SetHeader("k", "v")
			v, err := next(ctx, call)
			_, isStream := v.(*Stream)
			out <- fmt.Sprintf("%s %v %v", call.Kind, isStream, err)
			return v, err
		}},
		InboundInterceptors: []InboundInterceptor{func(ctx context.Context, d *Delivery, next Handler) error {
			in <- fmt.Sprintf("%s %s", d.Kind, d.Context.Header("k"))
			return next(ctx, d)
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	ref, err := e.Register("echo", streamEcho{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ref.OpenStream(context.Background(), "open")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "abc" {
		t.Fatalf("echo through the stream: %q, %v", got, err)
	}
	s.Close()
	if got := <-out; got != "stream true <nil>" {
		t.Errorf("the outbound interceptor saw %q, want a stream call returning a *Stream", got)
	}
	if got := <-in; got != "stream v" {
		t.Errorf("the inbound interceptor saw %q, want a stream delivery with header k=v", got)
	}
}
