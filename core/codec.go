package core

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR modes, built once: building one costs more than an encode.
var (
	encMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

// Decoder limits for untrusted input. Lengths are also checked against the
// bytes actually present before anything is allocated, and every frame is
// at most Config.MaxMessageSize.
const (
	maxNesting       = 32
	maxArrayElements = 1 << 20
	maxMapPairs      = 1 << 20
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{
		Time:        cbor.TimeRFC3339Nano, // keep nanoseconds; the default (Unix seconds) drops them
		IndefLength: cbor.IndefLengthForbidden,
		// Canonical: map entries and struct fields in the bytewise order
		// of their encoded keys (RFC 8949, section 4.2.1), so that a value
		// has one encoding, which generated codecs reproduce.
		Sort: cbor.SortBytewiseLexical,
	}.UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		MaxNestedLevels:  maxNesting,
		MaxArrayElements: maxArrayElements,
		MaxMapPairs:      maxMapPairs,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	registerBuiltins()
}

// msgType is one registered message type.
type msgType struct {
	name    string       // wire name
	ptrName string       // "*" + name, the wire name of *T
	typ     reflect.Type // the value type T
	decode  func(body []byte, ptr bool) (any, error)
	// decodeOwned decodes a body that the caller gives away (a message
	// that arrived in chunks): large []byte fields may then refer to it
	// instead of copying it. nil: decode does it.
	decodeOwned func(body []byte, ptr bool) (any, error)
	// encode appends the body for a T or *T and reports true, or reports
	// false for the library to do it; nil unless T has a generated codec
	// (gencodec.go).
	encode  func(buf *bytes.Buffer, body any) bool
	hasRefs bool // T may hold a *Ref, or an interface value holding a ref's tag, to bind on arrival (bind.go)
}

// typeEntry maps a Go type (T or *T) to its registration.
type typeEntry struct {
	mt   *msgType
	wire string // name, or "*"+name for the pointer type
}

type registry struct {
	byType map[reflect.Type]typeEntry
	byName map[string]*msgType
}

var (
	regMu sync.Mutex               // serializes writers; readers load reg
	reg   atomic.Pointer[registry] // copy-on-write: registration is rare, lookups are per message
)

func lookupType(t reflect.Type) (typeEntry, bool) {
	r := reg.Load()
	if r == nil {
		return typeEntry{}, false
	}
	e, ok := r.byType[t]
	return e, ok
}

func lookupName(wire string) (mt *msgType, ptr bool, ok bool) {
	r := reg.Load()
	if r == nil {
		return nil, false, false
	}
	name, ptr := strings.CutPrefix(wire, "*")
	mt, ok = r.byName[name]
	return mt, ptr, ok
}

// RegisterMessage gives type T a wire name, so that values of T and *T can
// be sent between envs. Call it from an init function (rpcgen emits these
// calls), once per type, with the same name in every program that
// exchanges T: the name, not the Go type, is what crosses the wire, so
// renaming or moving T is compatible as long as the name stays, and
// changing the name is not.
//
// Built-in types (string, bool, the int, uint and float kinds, []byte,
// time.Time and *Ref) need no registration. A value arrives as the type
// that was sent: T as T, *T as *T.
//
// RegisterMessage panics if name is empty or starts with "*" or "rpcenv.",
// if T is a pointer or interface type, or if the name or the type is
// already registered differently: these are programming errors that would
// otherwise surface as lost messages.
func RegisterMessage[T any](name string) {
	t := reflect.TypeFor[T]()
	switch {
	case name == "" || strings.HasPrefix(name, "*") || strings.ContainsAny(name, " \t\r\n"):
		panic(fmt.Sprintf("rpcenv: RegisterMessage[%v](%q): the name must be non-empty, without spaces, and not start with '*'", t, name))
	case strings.HasPrefix(name, "rpcenv."):
		panic(fmt.Sprintf("rpcenv: RegisterMessage[%v](%q): names starting with \"rpcenv.\" are reserved", t, name))
	case t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface:
		panic(fmt.Sprintf("rpcenv: RegisterMessage[%v]: register the element type; pointers to it are then accepted too", t))
	}
	register[T](name)
}

func register[T any](name string) {
	t := reflect.TypeFor[T]()
	regMu.Lock()
	defer regMu.Unlock()
	old := reg.Load()
	if old == nil {
		old = &registry{byType: map[reflect.Type]typeEntry{}, byName: map[string]*msgType{}}
	}
	if mt, ok := old.byName[name]; ok {
		if mt.typ == t {
			return // the same registration twice is harmless
		}
		panic(fmt.Sprintf("rpcenv: RegisterMessage[%v](%q): the name is already registered for %v", t, name, mt.typ))
	}
	if e, ok := old.byType[t]; ok {
		panic(fmt.Sprintf("rpcenv: RegisterMessage[%v](%q): the type is already registered as %q", t, name, e.mt.name))
	}
	mt := &msgType{name: name, ptrName: "*" + name, typ: t, hasRefs: containsRef(t, map[reflect.Type]bool{})}
	mt.encode, mt.decode, mt.decodeOwned = generatedCodecFor[T]()
	if mt.decode == nil {
		mt.decode = libraryDecoder[T]
	}
	next := &registry{
		byType: make(map[reflect.Type]typeEntry, len(old.byType)+2),
		byName: make(map[string]*msgType, len(old.byName)+1),
	}
	for k, v := range old.byType {
		next.byType[k] = v
	}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	next.byType[t] = typeEntry{mt: mt, wire: name}
	next.byType[reflect.PointerTo(t)] = typeEntry{mt: mt, wire: mt.ptrName}
	next.byName[name] = mt
	reg.Store(next)
}

// libraryDecoder decodes a T (or a *T, when ptr) with the library.
func libraryDecoder[T any](body []byte, ptr bool) (any, error) {
	if ptr {
		if len(body) == 1 && body[0] == cborNull {
			return (*T)(nil), nil
		}
		v := new(T)
		if err := decMode.Unmarshal(body, v); err != nil {
			return nil, err
		}
		return v, nil
	}
	var v T
	if err := decMode.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func registerBuiltins() {
	register[string]("string")
	register[bool]("bool")
	register[int]("int")
	register[int8]("int8")
	register[int16]("int16")
	register[int32]("int32")
	register[int64]("int64")
	register[uint]("uint")
	register[uint8]("uint8")
	register[uint16]("uint16")
	register[uint32]("uint32")
	register[uint64]("uint64")
	register[float32]("float32")
	register[float64]("float64")
	register[[]byte]("bytes")
	register[time.Time]("time")
	registerRefType()
}

// registerRefType registers *Ref alone (a Ref value is never sent).
func registerRefType() {
	t := reflect.TypeFor[Ref]()
	mt := &msgType{name: "rpcenv.ref", ptrName: "*rpcenv.ref", typ: t, hasRefs: true, decode: func(body []byte, ptr bool) (any, error) {
		if !ptr {
			return nil, fmt.Errorf("%w: type rpcenv.ref must be sent as a pointer", ErrProtocol)
		}
		if len(body) == 1 && body[0] == cborNull {
			return (*Ref)(nil), nil
		}
		r := new(Ref)
		if err := decMode.Unmarshal(body, r); err != nil {
			return nil, err
		}
		return r, nil
	}}
	regMu.Lock()
	defer regMu.Unlock()
	r := reg.Load()
	r.byType[reflect.PointerTo(t)] = typeEntry{mt: mt, wire: "*rpcenv.ref"}
	r.byName[mt.name] = mt
}

// TypeName returns the wire name of msg's type: the name it was
// registered under with RegisterMessage ("cluster.LaunchTask"), with a
// leading '*' for a pointer ("*cluster.LaunchTask"), or a built-in name
// ("string", "bytes"). For a type that is not registered it returns the
// Go type as fmt's %T prints it, and for nil "nil". Interceptors use it
// to name what crosses the wire.
func TypeName(msg any) string { return typeName(msg) }

// checkType returns the wire name of msg's type, or ErrUnregisteredType.
func checkType(msg any) (string, *msgType, error) {
	if msg == nil {
		return "", nil, nil
	}
	t := reflect.TypeOf(msg)
	te, ok := lookupType(t)
	if !ok {
		return "", nil, fmt.Errorf("%w %v: register it with core.RegisterMessage[%v](name) in every program that exchanges it", ErrUnregisteredType, t, t)
	}
	return te.wire, te.mt, nil
}

// decodeBody turns a received body back into the Go value that was sent,
// with its refs unbound: decodeMessage without an env.
func decodeBody(wire string, body []byte) (any, *msgType, error) {
	return decodeMessage(nil, wire, body, false)
}

// decodeBodyOf decodes a body with its type's decoder, and nothing more:
// the refs inside untyped values are still tags (decodeMessage turns
// them into refs). owned means body is the decoded value's to keep:
// nothing reuses it afterwards (msgType.decodeOwned).
func decodeBodyOf(wire string, body []byte, owned bool) (any, *msgType, error) {
	if wire == "" {
		if len(body) != 1 || body[0] != cborNull {
			return nil, nil, fmt.Errorf("%w: a message without a type must have a null body", ErrProtocol)
		}
		return nil, nil, nil
	}
	mt, ptr, ok := lookupName(wire)
	if !ok {
		return nil, nil, fmt.Errorf("%w %q: the receiving program has not registered it with core.RegisterMessage", ErrUnregisteredType, wire)
	}
	decode := mt.decode
	if owned && mt.decodeOwned != nil {
		decode = mt.decodeOwned
	}
	v, err := decode(body, ptr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: decode %s: %v", ErrProtocol, wire, err)
	}
	return v, mt, nil
}

// bufPool holds encode buffers; a frame is copied out of one exactly once.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Buffers that grew past this are dropped rather than pooled (the pool
// itself lets go of idle buffers at garbage collections). Large enough for
// the largest frame class, so that a stream of large messages does not
// grow a new buffer for each.
const maxPooledBuf = 2 << 20
