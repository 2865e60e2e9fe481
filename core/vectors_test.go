package core

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// The protocol's test vectors (testdata/protocol/vectors.json, described
// in testdata/protocol/README.md) are written by this implementation and
// checked against it here, so that an implementation in another language
// can check itself against the same file. Regenerate them after a
// deliberate change to the wire format:
//
//	go test ./core -run TestProtocolVectors -update
var update = flag.Bool("update", false, "rewrite testdata/protocol/vectors.json")

const vectorsFile = "../testdata/protocol/vectors.json"

type vectors struct {
	Version    int               `json:"version"`
	Handshakes []handshakeVector `json:"handshakes"`
	Envelopes  []envelopeVector  `json:"envelopes"`
	Chunks     []chunkVector     `json:"chunks"`
	Sealed     []sealedVector    `json:"sealed"`
	Malformed  []malformedVector `json:"malformed"`
}

type handshakeSide struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Nonce string `json:"nonce_hex"`
}

type frameVector struct {
	From string `json:"from"` // "dialer" or "listener"
	Kind string `json:"kind"`
	Hex  string `json:"hex"`
}

type handshakeVector struct {
	Name           string        `json:"name"`
	Secret         string        `json:"secret_hex"`
	ChannelBinding string        `json:"channel_binding_hex"`
	Seal           bool          `json:"seal"`
	Dialer         handshakeSide `json:"dialer"`
	Listener       handshakeSide `json:"listener"`
	ProofListener  string        `json:"proof_listener_hex"`
	ProofDialer    string        `json:"proof_dialer_hex"`
	KeyDL          string        `json:"key_dialer_to_listener_hex"`
	KeyLD          string        `json:"key_listener_to_dialer_hex"`
	Frames         []frameVector `json:"frames"`
}

type envelopeVector struct {
	Name    string            `json:"name"`
	Kind    uint8             `json:"kind"`
	ID      uint64            `json:"id"`
	To      string            `json:"to"`
	Type    string            `json:"type"`
	Body    string            `json:"body_hex"`
	Timeout int64             `json:"timeout"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Headers map[string]string `json:"headers,omitempty"`
	Hex     string            `json:"hex"`
}

type chunkVector struct {
	Name     string   `json:"name"`
	Envelope string   `json:"envelope_hex"`
	Pieces   []string `json:"chunk_frames_hex"`
}

type sealedVector struct {
	Name   string `json:"name"`
	Key    string `json:"key_hex"`
	Number uint64 `json:"number"`
	Plain  string `json:"plain_hex"`
	Sealed string `json:"sealed_hex"`
}

type malformedVector struct {
	Name   string `json:"name"`
	Hex    string `json:"hex"`
	Action string `json:"action"`
}

const (
	actionClose       = "close the connection"
	actionUnregistred = "the message is undeliverable: a Fail with code unregistered_type for an ask, a dead letter for a send"
	actionUndecodable = "the message is undeliverable: a Fail with code protocol for an ask, a dead letter for a send"
)

func h(b []byte) string { return hex.EncodeToString(b) }

// vectorNote is the registered type of the vectors' message with a ref
// inside an untyped field.
type vectorNote struct {
	Text  string
	Extra any
}

func init() { RegisterMessage[vectorNote]("example.Note") }

// makeVectors builds every vector from fixed inputs.
func makeVectors(tb testing.TB) vectors {
	tb.Helper()
	frame := func(hd *header, body any) []byte { return mustFrame(tb, hd, body, 1<<20) }
	v := vectors{Version: protocolVersion}

	d := handshakeSide{ID: "d1a1e2d1a1e2d1a1e2d1a1e2d1a1e2d1", Name: "executor-1", Nonce: h(bytes.Repeat([]byte{0x11}, nonceSize))}
	l := handshakeSide{ID: "11573e2e11573e2e11573e2e11573e2e", Name: "driver", Addr: "tcp://127.0.0.1:7077", Nonce: h(bytes.Repeat([]byte{0x22}, nonceSize))}
	secret := []byte("correct horse battery staple")
	for _, c := range []struct {
		name   string
		secret []byte
		cb     []byte
	}{
		{"without a secret", nil, nil},
		{"with a secret, without TLS: frames sealed", secret, nil},
		{"with a secret, over TLS: the proofs bound to the session", secret, bytes.Repeat([]byte{0xcb}, 32)},
	} {
		hv := handshakeVector{Name: c.name, Secret: h(c.secret), ChannelBinding: h(c.cb), Dialer: d, Listener: l}
		auth := c.secret != nil
		hv.Seal = auth && c.cb == nil
		dn, _ := hex.DecodeString(d.Nonce)
		ln, _ := hex.DecodeString(l.Nonce)
		dh := hello{Version: protocolVersion, EnvID: d.ID, EnvName: d.Name, Addr: d.Addr, Nonce: dn, Auth: auth, Seal: hv.Seal}
		lh := hello{Version: protocolVersion, EnvID: l.ID, EnvName: l.Name, Addr: l.Addr, Nonce: ln, Auth: auth, Seal: hv.Seal}
		ctl := func(kind uint8) *header { return &header{kind: kind, typ: "rpcenv.control"} }
		if auth {
			pl := proof(c.secret, "rpcenv listener", dn, ln, d.ID, l.ID, c.cb)
			pd := proof(c.secret, "rpcenv dialer", dn, ln, d.ID, l.ID, c.cb)
			lh.Proof = pl
			hv.ProofListener, hv.ProofDialer = h(pl), h(pd)
			if hv.Seal {
				dl, ld, err := sealKeys(c.secret, dn, ln, d.ID, l.ID)
				if err != nil {
					tb.Fatal(err)
				}
				hv.KeyDL, hv.KeyLD = h(dl), h(ld)
			}
			hv.Frames = []frameVector{
				{"dialer", "Hello", h(frame(ctl(kindHello), dh))},
				{"listener", "Hello", h(frame(ctl(kindHello), lh))},
				{"dialer", "Proof", h(frame(ctl(kindProof), pd))},
				{"listener", "Ready", h(frame(ctl(kindReady), true))},
			}
		} else {
			hv.Frames = []frameVector{
				{"dialer", "Hello", h(frame(ctl(kindHello), dh))},
				{"listener", "Hello", h(frame(ctl(kindHello), lh))},
			}
		}
		v.Handshakes = append(v.Handshakes, hv)
	}

	ref := newRef(nil, "driver", "tcp://127.0.0.1:7077", l.ID, "driver")
	for _, e := range []struct {
		name string
		hd   header
		body any
	}{
		{"Reject", header{kind: kindReject, code: "unauthenticated", message: "unauthenticated: the peer did not prove the shared secret"}, nil},
		{"Send of a string", header{kind: kindSend, to: "driver", typ: "string"}, "hello"},
		{"Send of a nil body", header{kind: kindSend, to: "driver"}, nil},
		{"Ask of an int, 5 s left", header{kind: kindAsk, id: 7, to: "driver", typ: "int", timeout: 5e9}, 42},
		{"Ask of a pointer to a ref", header{kind: kindAsk, id: 1 << 40, to: "registry", typ: "*rpcenv.ref", timeout: 120e9}, ref},
		{"Reply", header{kind: kindReply, id: 7, typ: "string"}, "pong"},
		{"Fail from an endpoint", header{kind: kindFail, id: 7, to: "tcp://127.0.0.1:7077/driver", code: "", message: "boom"}, nil},
		{"Fail from the env", header{kind: kindFail, id: 8, code: "endpoint_not_found", message: "endpoint not found: tcp://127.0.0.1:7077/nobody"}, nil},
		{"Fail with an application code", header{kind: kindFail, id: 9, to: "tcp://127.0.0.1:7077/billing", code: "billing.quota_exceeded", message: "account 42: quota exceeded"}, nil},
		{"Cancel", header{kind: kindCancel, id: 7}, nil},
		{"Lookup", header{kind: kindLookup, id: 10, to: "driver"}, nil},
		{"Reply to a Lookup", header{kind: kindReply, id: 10, typ: "*rpcenv.ref"}, ref},
		{"Heartbeat", header{kind: kindBeat, message: beatPadding}, nil},
		{"Credit for an endpoint", header{kind: kindCredit, id: 65536, to: "driver"}, nil},
		{"Credit for the connection", header{kind: kindCredit, id: 524288}, nil},
		{"Open", header{kind: kindOpen, id: 11, to: "files", typ: "string", timeout: 10e9}, "model.bin"},
		{"Stream data", header{kind: kindStreamData, id: 23}, []byte("some bytes")},
		{"Stream credit", header{kind: kindStreamCredit, id: 22}, uint64(262144)},
		{"Stream end", header{kind: kindStreamEnd, id: 23}, nil},
		{"Stream reset", header{kind: kindStreamReset, id: 22, code: "stream_closed", message: "the reader stopped"}, nil},
		{"Stream stop", header{kind: kindStreamStop, id: 22}, nil},
		// Appended last: the sealed vectors below pick envelopes by index.
		{"Send of a ref inside an untyped field", header{kind: kindSend, to: "driver", typ: "example.Note"}, vectorNote{Text: "who asks", Extra: ref}},
		{"Ask with headers", header{kind: kindAsk, id: 8, to: "driver", typ: "string", timeout: 5e9, headers: map[string]string{
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tenant": "blue"}}, "status?"},
		{"Goodbye", header{kind: kindGoodbye}, nil},
	} {
		f := frame(&e.hd, e.body)
		var env envelope
		if err := decodeEnvelope(f, &env); err != nil {
			tb.Fatal(err)
		}
		v.Envelopes = append(v.Envelopes, envelopeVector{Name: e.name, Kind: e.hd.kind, ID: e.hd.id, To: e.hd.to, Type: e.hd.typ, Body: h(env.Body),
			Timeout: e.hd.timeout, Code: e.hd.code, Message: e.hd.message, Headers: e.hd.headers, Hex: h(f)})
	}

	whole := frame(&header{kind: kindSend, to: "driver", typ: "string"}, "a message cut into three pieces")
	cv := chunkVector{Name: "a Send in three chunks, id 1", Envelope: h(whole)}
	for i, at := 0, 0; at < len(whole); i++ {
		end := min(at+16, len(whole))
		total := 0
		if at == 0 {
			total = len(whole) // the first chunk announces the frame's length
		}
		cv.Pieces = append(cv.Pieces, h(appendChunk(nil, 1, end == len(whole), whole[at:end], total)))
		at = end
	}
	v.Chunks = append(v.Chunks, cv)

	sealedHS := v.Handshakes[1]
	key, _ := hex.DecodeString(sealedHS.KeyDL)
	s, err := newSealer(key)
	if err != nil {
		tb.Fatal(err)
	}
	for i, plainHex := range []string{v.Envelopes[1].Hex, v.Envelopes[12].Hex, cv.Pieces[0]} {
		plain, _ := hex.DecodeString(plainHex)
		n := s.n
		sealed := s.aead.Seal(nil, s.next(), plain, nil)
		v.Sealed = append(v.Sealed, sealedVector{Name: []string{"the dialer's first sealed frame: a Send", "its second: a Heartbeat", "its third: a chunk"}[i],
			Key: sealedHS.KeyDL, Number: n, Plain: plainHex, Sealed: h(sealed)})
	}

	bad := malformedFrames(tb)
	names := make([]string, 0, len(bad))
	for name := range bad {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v.Malformed = append(v.Malformed, malformedVector{Name: name, Hex: h(bad[name]), Action: actionClose})
	}
	v.Malformed = append(v.Malformed,
		malformedVector{Name: "an Ask of a type the receiver does not know", Hex: h(frame(&header{kind: kindAsk, id: 3, to: "driver", typ: "no.such.Type", timeout: 1e9}, "x")), Action: actionUnregistred},
		malformedVector{Name: "a Send of an int whose body is a text string", Hex: h(frame(&header{kind: kindSend, to: "driver", typ: "int"}, "forty-two")), Action: actionUndecodable},
		malformedVector{Name: "a Send of a ref without its tag", Hex: h(frame(&header{kind: kindSend, to: "driver", typ: "*rpcenv.ref"},
			refWire{Name: "driver", Addr: "tcp://127.0.0.1:7077", EnvID: l.ID, EnvName: "driver"})), Action: actionUndecodable},
		malformedVector{Name: "a Send with a ref tag of three items in an untyped field", Hex: h(frame(&header{kind: kindSend, to: "driver", typ: "example.Note"},
			vectorNote{Extra: cbor.Tag{Number: refTag, Content: []string{"driver", "tcp://127.0.0.1:7077", l.ID}}})), Action: actionUndecodable},
	)
	return v
}

// TestProtocolVectors checks this implementation against the published
// vectors: every frame encodes and decodes as written, proofs and keys
// derive as written, sealed frames seal and open, and malformed frames
// are refused as their action says.
func TestProtocolVectors(t *testing.T) {
	made := makeVectors(t)
	if *update {
		b, err := json.MarshalIndent(made, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./core -run TestProtocolVectors -update writes it)", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte {
		t.Helper()
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if v.Version != protocolVersion {
		t.Fatalf("vectors of version %d, this implementation speaks %d", v.Version, protocolVersion)
	}

	for _, hv := range v.Handshakes {
		dn, ln, secret, cb := unhex(hv.Dialer.Nonce), unhex(hv.Listener.Nonce), unhex(hv.Secret), unhex(hv.ChannelBinding)
		if len(cb) == 0 {
			cb = nil
		}
		if len(secret) > 0 {
			if got := h(proof(secret, "rpcenv listener", dn, ln, hv.Dialer.ID, hv.Listener.ID, cb)); got != hv.ProofListener {
				t.Errorf("%s: proofL %s, want %s", hv.Name, got, hv.ProofListener)
			}
			if got := h(proof(secret, "rpcenv dialer", dn, ln, hv.Dialer.ID, hv.Listener.ID, cb)); got != hv.ProofDialer {
				t.Errorf("%s: proofD %s, want %s", hv.Name, got, hv.ProofDialer)
			}
		}
		if hv.Seal {
			dl, ld, err := sealKeys(secret, dn, ln, hv.Dialer.ID, hv.Listener.ID)
			if err != nil || h(dl) != hv.KeyDL || h(ld) != hv.KeyLD {
				t.Errorf("%s: keys %x, %x (%v); want %s, %s", hv.Name, dl, ld, err, hv.KeyDL, hv.KeyLD)
			}
		}
		for _, fv := range hv.Frames {
			var env envelope
			if err := decodeEnvelope(unhex(fv.Hex), &env); err != nil || env.Type != "rpcenv.control" {
				t.Errorf("%s: %s's %s: %v, type %q", hv.Name, fv.From, fv.Kind, err, env.Type)
			}
		}
	}
	for i, ev := range v.Envelopes {
		var env envelope
		f := unhex(ev.Hex)
		if err := decodeEnvelope(f, &env); err != nil {
			t.Errorf("%s: %v", ev.Name, err)
			continue
		}
		want := envelope{Kind: ev.Kind, ID: ev.ID, To: ev.To, Type: ev.Type, Body: unhex(ev.Body), Timeout: ev.Timeout, Code: ev.Code, Message: ev.Message}
		if env.Kind != want.Kind || env.ID != want.ID || env.To != want.To || env.Type != want.Type || !bytes.Equal(env.Body, want.Body) ||
			env.Timeout != want.Timeout || env.Code != want.Code || env.Message != want.Message || !maps.Equal(env.Headers, ev.Headers) {
			t.Errorf("%s: decoded %+v, want %+v", ev.Name, env, want)
		}
		if i < len(made.Envelopes) && made.Envelopes[i].Hex != ev.Hex {
			t.Errorf("%s: this implementation encodes %s, the vector is %s", ev.Name, made.Envelopes[i].Hex, ev.Hex)
		}
		// Refs decode as refs, wherever they are.
		var got *Ref
		switch ev.Type {
		case "*rpcenv.ref":
			v, _, err := decodeBody(ev.Type, want.Body)
			got, _ = v.(*Ref)
			if err != nil || got == nil {
				t.Errorf("%s: the body decodes as %#v, %v; want a *Ref", ev.Name, v, err)
			}
		case "example.Note":
			v, _, err := decodeBody(ev.Type, want.Body)
			n, _ := v.(vectorNote)
			if got, _ = n.Extra.(*Ref); err != nil || got == nil {
				t.Errorf("%s: the body decodes as %#v, %v; want a vectorNote holding a *Ref", ev.Name, v, err)
			}
		}
		if got != nil && got.String() != "tcp://127.0.0.1:7077/driver" {
			t.Errorf("%s: the ref decodes as %s", ev.Name, got)
		}
	}
	for _, cv := range v.Chunks {
		var r reassembly
		var got []byte
		for i, p := range cv.Pieces {
			out, err := r.add(unhex(p), 1<<20)
			if err != nil || (out != nil) != (i == len(cv.Pieces)-1) {
				t.Fatalf("%s: chunk %d: %v, whole %v", cv.Name, i, err, out != nil)
			}
			got = out
		}
		if h(got) != cv.Envelope {
			t.Errorf("%s: joined %x, want %s", cv.Name, got, cv.Envelope)
		}
	}
	for _, sv := range v.Sealed {
		s, err := newSealer(unhex(sv.Key))
		if err != nil {
			t.Fatal(err)
		}
		s.n = sv.Number
		nonce := append([]byte(nil), s.next()...)
		if got := h(s.aead.Seal(nil, nonce, unhex(sv.Plain), nil)); got != sv.Sealed {
			t.Errorf("%s: sealed %s, want %s", sv.Name, got, sv.Sealed)
		}
		if p, err := s.aead.Open(nil, nonce, unhex(sv.Sealed), nil); err != nil || h(p) != sv.Plain {
			t.Errorf("%s: opened %x, %v; want %s", sv.Name, p, err, sv.Plain)
		}
	}
	for _, mv := range v.Malformed {
		f := unhex(mv.Hex)
		var env envelope
		err := decodeEnvelope(f, &env)
		switch mv.Action {
		case actionClose:
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("%s: decodeEnvelope = %v, want ErrProtocol (the receiver closes the connection)", mv.Name, err)
			}
		case actionUnregistred, actionUndecodable:
			if err != nil {
				t.Errorf("%s: decodeEnvelope = %v, want a well-formed envelope", mv.Name, err)
				continue
			}
			_, _, err := decodeBody(env.Type, env.Body)
			want := ErrProtocol
			if mv.Action == actionUnregistred {
				want = ErrUnregisteredType
			}
			if !errors.Is(err, want) || codeOf(err) == "" {
				t.Errorf("%s: decodeBody = %v, want an error wrapping %v", mv.Name, err, want)
			}
		default:
			t.Errorf("%s: unknown action %q", mv.Name, mv.Action)
		}
	}
	if !*update {
		b, _ := json.MarshalIndent(made, "", "  ")
		if !bytes.Equal(append(b, '\n'), raw) {
			t.Errorf("%s differs from what this implementation writes: run go test ./core -run TestProtocolVectors -update and review the diff", vectorsFile)
		}
	}
}
