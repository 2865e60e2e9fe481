package core

import (
	"bytes"
	"sync"

	"github.com/rpcenv/rpcenv/cborgen"
)

// Generated codecs: rpcgen writes, for each message type it can (see
// package gen), methods that encode and decode the type's CBOR without
// reflection, in exactly the bytes the library writes (package cborgen).
// RegisterMessage finds them on the type and uses them; other types keep
// the library's codec.

// generatedEncoder is what rpcgen generates on a message type T, with a
// value receiver so that a T held in an interface encodes without a copy
// to the heap.
type generatedEncoder interface {
	AppendRPC(b []byte) ([]byte, error)
}

// generatedDecoder is what rpcgen generates on *T. DecodeRPC reports
// false when data is not in the layout AppendRPC writes; the library then
// decodes it, so what is accepted, the values and the errors are the
// library's.
type generatedDecoder interface {
	DecodeRPC(data []byte) bool
}

// generatedReader is what rpcgen generates on *T besides DecodeRPC: it
// reads a T from a Reader the caller set up (msgType.decodeOwned shares
// the body's bytes with the value).
type generatedReader interface {
	ReadRPC(r *cborgen.Reader)
}

// generatedCodecFor returns msgType's encode, decode and decodeOwned for
// T when T has generated methods, or nils.
func generatedCodecFor[T any]() (enc func(*bytes.Buffer, any) bool, dec, decOwned func([]byte, bool) (any, error)) {
	var zero T
	if _, ok := any(zero).(generatedEncoder); !ok {
		return nil, nil, nil
	}
	if _, ok := any(new(T)).(generatedDecoder); !ok {
		return nil, nil, nil
	}
	if _, ok := any(new(T)).(generatedReader); ok {
		decOwned = generatedDecodeOwned[T]
	}
	return generatedEncode[T], generatedDecode[T](), decOwned
}

// generatedEncode appends the body for a T or *T to buf and reports true,
// or reports false, having written nothing, for a value of any other type
// or one the generated code cannot encode (the library then encodes it,
// or returns its own error for it).
// Allocations: none (but for growing buf).
func generatedEncode[T any](buf *bytes.Buffer, body any) bool {
	switch v := body.(type) {
	case *T:
		if v == nil {
			buf.WriteByte(cborNull) // as the library encodes a nil pointer
			return true
		}
	case T:
	default:
		return false
	}
	// *T has T's methods too: no copy of the value is made.
	b, err := body.(generatedEncoder).AppendRPC(buf.AvailableBuffer())
	if err != nil {
		return false
	}
	buf.Write(b)
	return true
}

// generatedDecode returns the decoder of msgType.decode for T. A T is
// decoded into a recycled *T and then copied into the interface value, so
// that a T costs one allocation (the interface's copy) besides its
// contents, as a *T does (the T itself).
func generatedDecode[T any]() func(body []byte, ptr bool) (any, error) {
	scratch := sync.Pool{New: func() any { return new(T) }}
	return func(body []byte, ptr bool) (any, error) {
		if ptr {
			if len(body) == 1 && body[0] == cborNull {
				return (*T)(nil), nil
			}
			v := new(T)
			if err := orLibrary(v, body, any(v).(generatedDecoder).DecodeRPC(body)); err != nil {
				return nil, err
			}
			return v, nil
		}
		v := scratch.Get().(*T)
		var zero T
		*v = zero
		if err := orLibrary(v, body, any(v).(generatedDecoder).DecodeRPC(body)); err != nil {
			scratch.Put(v)
			return nil, err
		}
		out := any(*v)
		*v = zero // keep nothing the message refers to alive
		scratch.Put(v)
		return out, nil
	}
}

// readers recycles the Readers of generatedDecodeOwned: one passed to
// ReadRPC through an interface escapes, and a Reader is 170 bytes.
var readers = sync.Pool{New: func() any { return new(cborgen.Reader) }}

// generatedDecodeOwned decodes a body the caller gives away, sharing its
// large byte strings with the value (cborgen.Reader.Share) instead of
// copying them: a message that arrived in chunks, whose reassembled frame
// nothing reuses.
func generatedDecodeOwned[T any](body []byte, ptr bool) (any, error) {
	if ptr && len(body) == 1 && body[0] == cborNull {
		return (*T)(nil), nil
	}
	v := new(T)
	r := readers.Get().(*cborgen.Reader)
	r.Reset(body)
	r.Share()
	any(v).(generatedReader).ReadRPC(r)
	ok := r.Done()
	r.Reset(nil)
	readers.Put(r)
	if err := orLibrary(v, body, ok); err != nil {
		return nil, err
	}
	if ptr {
		return v, nil
	}
	return *v, nil
}

// orLibrary lets the library decode body into v when the generated code
// did not (decoded is false), after undoing what it wrote before it gave
// up, so that what is accepted, the values and the errors are the
// library's.
func orLibrary[T any](v *T, body []byte, decoded bool) error {
	if decoded {
		return nil
	}
	var zero T
	*v = zero
	return decMode.Unmarshal(body, v)
}

// AppendRef appends r's CBOR encoding to b, as the library codec writes
// it: null for a nil r, else tag 62064 around [name, address, env id, env
// name]. It is for code that rpcgen generates.
func AppendRef(b []byte, r *Ref) []byte {
	if r == nil {
		return cborgen.AppendNull(b)
	}
	b = cborgen.AppendTagHead(b, refTag)
	b = cborgen.AppendArrayHead(b, 4)
	b = cborgen.AppendString(b, r.name)
	b = cborgen.AppendString(b, r.addr)
	b = cborgen.AppendString(b, r.envID)
	return cborgen.AppendString(b, r.envName)
}

// ReadRef reads a ref written by AppendRef (or the library) from rd: nil
// for null. A ref without its tag, or without a name or env id, fails rd,
// as the library's decoding fails. The ref becomes usable when the env
// that received it delivers the message. It is for code that rpcgen
// generates.
func ReadRef(rd *cborgen.Reader) *Ref {
	if rd.Null() {
		return nil
	}
	w, ok := readRefWire(rd)
	if !ok {
		return nil
	}
	r := new(Ref)
	r.setWire(w)
	return r
}
