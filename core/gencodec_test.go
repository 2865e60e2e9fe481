package core

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/cborgen"
)

// blob has hand-written methods in the shape rpcgen generates, so that
// core's own tests can use a generated codec (package codectest, whose
// messages rpcgen generates, imports core).
type blob struct{ Data []byte }

func init() { RegisterMessage[blob]("coretest.blob") }

func (m blob) AppendRPC(b []byte) ([]byte, error) {
	b = cborgen.AppendMapHead(b, 1)
	b = cborgen.AppendString(b, "Data")
	return cborgen.AppendBytes(b, m.Data), nil
}

func (m *blob) DecodeRPC(data []byte) bool {
	r := cborgen.NewReader(data)
	m.ReadRPC(&r)
	return r.Done()
}

func (m *blob) ReadRPC(r *cborgen.Reader) {
	if r.MapHead() != 1 {
		r.Fail()
		return
	}
	r.Key("dData")
	m.Data = r.Bytes()
	r.End()
}

// TestOwnedBodiesShareTheirBytes checks that a body decoded as owned (a
// message that arrived in chunks) gives a large []byte field that refers
// to the body, and that any other body is copied.
func TestOwnedBodiesShareTheirBytes(t *testing.T) {
	data := bytes.Repeat([]byte{0xab}, 4*cborgen.MinShared)
	body, err := encMode.Marshal(blob{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	within := func(b []byte) bool {
		for i := range body {
			if &body[i] == &b[0] {
				return true
			}
		}
		return false
	}
	for _, wire := range []string{"coretest.blob", "*coretest.blob"} {
		for _, owned := range []bool{false, true} {
			v, _, err := decodeBodyOf(wire, body, owned)
			if err != nil {
				t.Fatalf("%s, owned %v: %v", wire, owned, err)
			}
			var got []byte
			switch m := v.(type) {
			case blob:
				got = m.Data
			case *blob:
				got = m.Data
			default:
				t.Fatalf("%s: decoded a %T", wire, v)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s, owned %v: the bytes differ", wire, owned)
			}
			if within(got) != owned {
				t.Errorf("%s, owned %v: the field refers to the body: %v, want %v", wire, owned, within(got), owned)
			}
		}
	}
	// A body the generated code does not take falls back to the library,
	// owned or not: here the key is in another case.
	other, err := encMode.Marshal(map[string][]byte{"DATA": data})
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := decodeBodyOf("coretest.blob", other, true)
	if err != nil || !bytes.Equal(v.(blob).Data, data) {
		t.Errorf("library fallback: %v, equal %v", err, err == nil && bytes.Equal(v.(blob).Data, data))
	}
	if v, _, err := decodeBodyOf("*coretest.blob", []byte{cborNull}, true); err != nil || v.(*blob) != nil {
		t.Errorf("null as *blob: %v, %v; want a nil *blob", v, err)
	}
}

// TestLendable checks which body sizes an endpoint that borrows gets lent:
// from minLent, filling at least half of a pooled frame, up to the largest.
func TestLendable(t *testing.T) {
	for _, c := range []struct {
		n    int
		want bool
	}{
		{minLent - 1, false},
		{minLent, true},     // half of a 16 KiB frame
		{16<<10 + 1, false}, // a quarter of a 64 KiB frame
		{32 << 10, true},    // half of it
		{64<<10 + 64, true}, // a whole frame's worth, in a 128 KiB one
		{300 << 10, false},  // under half of a 1 MiB frame
		{1 << 20, true},     // the largest
		{1<<20 + 1, false},  // no pooled frame is that large
	} {
		if got := lendable(c.n); got != c.want {
			t.Errorf("lendable(%d) = %v, want %v", c.n, got, c.want)
		}
	}
}

// refBlob has hand-written methods in the shape rpcgen generates for a
// struct with a *Ref field, calling AppendRef and ReadRef as generated
// code does.
type refBlob struct{ R *Ref }

func init() { RegisterMessage[refBlob]("coretest.refBlob") }

func (m refBlob) AppendRPC(b []byte) ([]byte, error) {
	b = cborgen.AppendMapHead(b, 1)
	b = cborgen.AppendString(b, "R")
	return AppendRef(b, m.R), nil
}

func (m *refBlob) DecodeRPC(data []byte) bool {
	r := cborgen.NewReader(data)
	m.ReadRPC(&r)
	return r.Done()
}

func (m *refBlob) ReadRPC(r *cborgen.Reader) {
	if r.MapHead() != 1 {
		r.Fail()
		return
	}
	r.Key("aR")
	m.R = ReadRef(r)
	r.End()
}

// TestGeneratedRefCodecIsTheLibrarys checks that a generated codec
// writes a ref's tag as the library does and reads it back, and that a
// body whose ref lacks the tag falls back to the library, which refuses
// it.
func TestGeneratedRefCodecIsTheLibrarys(t *testing.T) {
	ref := newRef(nil, "driver", "tcp://127.0.0.1:7077", "11573e2e11573e2e11573e2e11573e2e", "driver")
	for _, m := range []refBlob{{R: ref}, {}} {
		gen, _ := m.AppendRPC(nil)
		lib, err := encMode.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gen, lib) {
			t.Errorf("%+v: AppendRPC wrote\n%x\nthe library writes\n%x", m, gen, lib)
		}
		var got refBlob
		if !got.DecodeRPC(lib) || !got.R.Equal(m.R) {
			t.Errorf("%+v: DecodeRPC refused the library's bytes or read %v", m, got.R)
		}
		for _, owned := range []bool{false, true} {
			v, _, err := decodeBodyOf("coretest.refBlob", lib, owned)
			if err != nil || !v.(refBlob).R.Equal(m.R) {
				t.Errorf("%+v, owned %v: decoded %+v, %v", m, owned, v, err)
			}
		}
	}
	untagged, err := encMode.Marshal(map[string]refWire{"R": {Name: "driver", EnvID: "11573e2e11573e2e11573e2e11573e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	var got refBlob
	if got.DecodeRPC(untagged) {
		t.Errorf("DecodeRPC accepted an untagged ref: %x", untagged)
	}
	for _, owned := range []bool{false, true} {
		if _, _, err := decodeBodyOf("coretest.refBlob", untagged, owned); !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "tag 62064") {
			t.Errorf("owned %v: an untagged ref decoded with %v, want ErrProtocol naming the tag", owned, err)
		}
	}
}
