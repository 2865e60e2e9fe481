package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"unicode/utf8"
	"unsafe"
)

// The compiled struct codec: for a registered struct type made only of
// plain fields (structPlanFor says which), RegisterMessage builds a
// structPlan once with reflect, and messages of that type are then
// encoded and decoded with precomputed field offsets and no reflection.
//
// It is an optimisation, never a change of behaviour. The encoder writes
// exactly the bytes encMode writes. The decoder accepts only that
// canonical layout (same keys in the same order, shortest heads, the
// value kinds the encoder writes) and hands anything else, including
// every error, to decMode.Unmarshal: what is accepted, the values that
// result and the errors are the library's.
//
// What the library does, and this codec copies (checked byte for byte by
// the tests and FuzzStructCodec):
//   - a struct is a map of its fields in declaration order, keyed by
//     their names as text strings, with the shortest head;
//   - integers take the shortest head; float32 is 0xfa and float64 0xfb
//     (ShortestFloat is none), but NaN is always 0xf97e00 and ±Inf
//     0xf97c00/0xf9fc00 (NaNConvert7e00, InfConvertFloat16);
//   - a nil []byte is null (0xf6), an empty one 0x40; decoding gives nil
//     for null and a non-nil empty slice for 0x40;
//   - invalid UTF-8 in a text string is an error when decoding.

// structMaxFields bounds the fields of an eligible type; larger types
// keep the library's codec.
const structMaxFields = 64

type structKind uint8

const (
	skBool structKind = iota
	skInt             // signed integer of size bytes
	skUint            // unsigned integer of size bytes
	skFloat32
	skFloat64
	skString
	skBytes
)

// structField is one field of a plan.
type structField struct {
	off  uintptr    // offset in the struct
	kind structKind // how the field is encoded
	size uint8      // bytes, for skInt and skUint
	key  string     // the field's map key as encoded: text head and name
	max  uint64     // the largest value, for skInt and skUint; for skInt also the largest n of a negative -1-n
}

// structPlan is the compiled codec of one struct type. It is immutable
// once built, so safe for concurrent use.
type structPlan struct {
	head   string // the map head: the number of fields
	fields []structField
	fixed  int // an upper bound of the encoding's size but for string and []byte contents
}

// Methods through which the library could encode or decode a type in its
// own way. Any of them, with any signature, on T or *T, makes a type
// ineligible: it is simpler to be strict than to follow the library's
// modes (which of these it honours, and when).
var structCodecMethods = []string{
	"MarshalCBOR", "UnmarshalCBOR",
	"MarshalBinary", "UnmarshalBinary", "AppendBinary",
	"MarshalText", "UnmarshalText", "AppendText",
	"MarshalJSON", "UnmarshalJSON",
}

var byteType = reflect.TypeFor[byte]()

// structPlanFor compiles the codec of t, or returns nil and why t is not
// eligible. Eligible: a struct of 1 to structMaxFields fields, all
// exported, none embedded, none with a cbor or json tag, each of kind
// bool, int*, uint* (not uintptr), float32, float64, string or a slice
// of byte, and neither t nor a field type has any of structCodecMethods.
func structPlanFor(t reflect.Type) (*structPlan, string) {
	if t.Kind() != reflect.Struct {
		return nil, "not a struct"
	}
	if m := codecMethod(t); m != "" {
		return nil, "the type has method " + m
	}
	n := t.NumField()
	if n == 0 {
		return nil, "no fields"
	}
	if n > structMaxFields {
		return nil, fmt.Sprintf("more than %d fields", structMaxFields)
	}
	p := &structPlan{fields: make([]structField, n)}
	p.head = string(appendUint(nil, 5, uint64(n)))
	p.fixed = len(p.head)
	for i := range n {
		sf := t.Field(i)
		_, cborTag := sf.Tag.Lookup("cbor")
		_, jsonTag := sf.Tag.Lookup("json") // the library's fallback for cbor
		switch {
		case !sf.IsExported():
			return nil, "field " + sf.Name + " is not exported"
		case sf.Anonymous:
			return nil, "field " + sf.Name + " is embedded"
		case cborTag:
			return nil, "field " + sf.Name + " has a cbor tag"
		case jsonTag:
			return nil, "field " + sf.Name + " has a json tag"
		}
		ft := sf.Type
		if m := codecMethod(ft); m != "" {
			return nil, "field " + sf.Name + " has method " + m
		}
		f := structField{off: sf.Offset, key: string(append(appendUint(nil, 3, uint64(len(sf.Name))), sf.Name...))}
		valueMax := 9 // the longest head
		switch ft.Kind() {
		case reflect.Bool:
			f.kind, valueMax = skBool, 1
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.kind, f.size = skInt, uint8(ft.Size())
			f.max = 1<<(8*ft.Size()-1) - 1 // and -1-max is the minimum
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.kind, f.size = skUint, uint8(ft.Size())
			f.max = math.MaxUint64 >> (64 - 8*ft.Size())
		case reflect.Float32:
			f.kind, valueMax = skFloat32, 5
		case reflect.Float64:
			f.kind = skFloat64
		case reflect.String:
			f.kind = skString
		case reflect.Slice:
			if ft.Elem() != byteType {
				return nil, "field " + sf.Name + " is a slice of " + ft.Elem().String()
			}
			f.kind = skBytes
		default:
			return nil, "field " + sf.Name + " is of kind " + ft.Kind().String()
		}
		p.fields[i] = f
		p.fixed += len(f.key) + valueMax
	}
	return p, ""
}

// codecMethod returns the first of structCodecMethods that t or *t has.
func codecMethod(t reflect.Type) string {
	pt := reflect.PointerTo(t) // its method set includes t's
	for _, m := range structCodecMethods {
		if _, ok := pt.MethodByName(m); ok {
			return m
		}
	}
	return ""
}

// structEncoder returns the encoder of msgType.encode for T, nil if T has
// no plan. It appends the body for a T or *T to buf and reports true, or
// reports false without writing for a value of any other type.
// Allocations: none (but for growing buf).
func structEncoder[T any](p *structPlan) func(buf *bytes.Buffer, body any) bool {
	if p == nil {
		return nil
	}
	return func(buf *bytes.Buffer, body any) bool {
		switch v := body.(type) {
		case *T:
			if v == nil {
				buf.WriteByte(cborNull) // as the library encodes a nil pointer
				return true
			}
			p.encode(buf, unsafe.Pointer(v))
		case T:
			p.encode(buf, unsafe.Pointer(&v)) // v stays on the stack: encode keeps no pointer
		default:
			return false
		}
		return true
	}
}

// structDecoder returns the decoder of msgType.decode for T with plan p.
// Allocations on the fast path: the value (new(T), or T boxed in an any)
// and the contents of non-empty strings and byte slices.
func structDecoder[T any](p *structPlan) func(body []byte, ptr bool) (any, error) {
	return func(body []byte, ptr bool) (any, error) {
		if ptr {
			if len(body) == 1 && body[0] == cborNull {
				return (*T)(nil), nil
			}
			v := new(T)
			if !p.decode(body, unsafe.Pointer(v)) {
				var zero T
				*v = zero // undo what the fast path wrote before it gave up
				if err := decMode.Unmarshal(body, v); err != nil {
					return nil, err
				}
			}
			return v, nil
		}
		var v T
		if !p.decode(body, unsafe.Pointer(&v)) {
			// In its own function: v would escape, costing an
			// allocation on the fast path too.
			return decodeValueSlow[T](body)
		}
		return v, nil
	}
}

// decodeValueSlow is the library's decoding of a T.
func decodeValueSlow[T any](body []byte) (any, error) {
	var v T
	if err := decMode.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// fieldAt returns the field at offset off of the struct at base, as an F.
// It is the only place that makes typed pointers out of a plan's offsets:
// F must have the size and representation of the field's type (a named
// int is read as int, an int8 is written as a uint8), which the callers
// ensure by switching on the kind and size structPlanFor recorded.
func fieldAt[F any](base unsafe.Pointer, off uintptr) *F {
	return (*F)(unsafe.Add(base, off))
}

// encode appends the encoding of the struct at base to buf.
func (p *structPlan) encode(buf *bytes.Buffer, base unsafe.Pointer) {
	n := p.fixed
	for i := range p.fields {
		switch f := &p.fields[i]; f.kind {
		case skString:
			n += len(*fieldAt[string](base, f.off))
		case skBytes:
			n += len(*fieldAt[[]byte](base, f.off))
		}
	}
	buf.Grow(n) // so that the appends below do not reallocate
	buf.Write(p.append(buf.AvailableBuffer(), base))
}

// append appends the encoding of the struct at base to b, as encMode does.
func (p *structPlan) append(b []byte, base unsafe.Pointer) []byte {
	b = append(b, p.head...)
	for i := range p.fields {
		f := &p.fields[i]
		b = append(b, f.key...)
		switch f.kind {
		case skBool:
			if *fieldAt[bool](base, f.off) {
				b = append(b, 0xf5)
			} else {
				b = append(b, 0xf4)
			}
		case skInt:
			b = appendInt(b, loadInt(base, f))
		case skUint:
			b = appendUint(b, 0, loadUint(base, f))
		case skFloat32:
			x := *fieldAt[float32](base, f.off)
			if h, ok := halfSpecial(float64(x)); ok {
				b = append(b, 0xf9, h[0], h[1])
			} else {
				b = binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(x))
			}
		case skFloat64:
			x := *fieldAt[float64](base, f.off)
			if h, ok := halfSpecial(x); ok {
				b = append(b, 0xf9, h[0], h[1])
			} else {
				b = binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(x))
			}
		case skString:
			s := *fieldAt[string](base, f.off)
			b = append(appendUint(b, 3, uint64(len(s))), s...)
		case skBytes:
			s := *fieldAt[[]byte](base, f.off)
			if s == nil {
				b = append(b, cborNull)
			} else {
				b = append(appendUint(b, 2, uint64(len(s))), s...)
			}
		}
	}
	return b
}

func loadInt(base unsafe.Pointer, f *structField) int64 {
	switch f.size {
	case 1:
		return int64(*fieldAt[int8](base, f.off))
	case 2:
		return int64(*fieldAt[int16](base, f.off))
	case 4:
		return int64(*fieldAt[int32](base, f.off))
	default:
		return *fieldAt[int64](base, f.off)
	}
}

func loadUint(base unsafe.Pointer, f *structField) uint64 {
	switch f.size {
	case 1:
		return uint64(*fieldAt[uint8](base, f.off))
	case 2:
		return uint64(*fieldAt[uint16](base, f.off))
	case 4:
		return uint64(*fieldAt[uint32](base, f.off))
	default:
		return *fieldAt[uint64](base, f.off)
	}
}

// storeInt stores x, which is in the field's range, as either kind.
func storeInt(base unsafe.Pointer, f *structField, x uint64) {
	switch f.size {
	case 1:
		*fieldAt[uint8](base, f.off) = uint8(x)
	case 2:
		*fieldAt[uint16](base, f.off) = uint16(x)
	case 4:
		*fieldAt[uint32](base, f.off) = uint32(x)
	default:
		*fieldAt[uint64](base, f.off) = x
	}
}

// The values the library decodes from a half-precision NaN (0xf97e00):
// the quiet NaN of float32, and that converted to float64.
var (
	structNaN32 = math.Float32frombits(0x7fc00000)
	structNaN64 = float64(structNaN32)
)

// decode decodes b into the zero struct at base if b is exactly an
// encoding that append could produce, and reports whether it did. When it
// reports false it may have written some fields.
func (p *structPlan) decode(b []byte, base unsafe.Pointer) bool {
	if len(b) < len(p.head) || string(b[:len(p.head)]) != p.head {
		return false
	}
	off := len(p.head)
	for i := range p.fields {
		f := &p.fields[i]
		end := off + len(f.key)
		if end >= len(b) || string(b[off:end]) != f.key { // a value must follow
			return false
		}
		off = end
		switch ib := b[off]; f.kind {
		case skBool:
			switch ib {
			case 0xf4:
				*fieldAt[bool](base, f.off) = false
			case 0xf5:
				*fieldAt[bool](base, f.off) = true
			default:
				return false
			}
			off++
		case skInt:
			major, arg, next, ok := shortestHead(b, off)
			switch {
			case ok && major == 0 && arg <= f.max:
				storeInt(base, f, arg)
			case ok && major == 1 && arg <= f.max:
				storeInt(base, f, uint64(-1-int64(arg))) // two's complement, truncated to the field
			default:
				return false
			}
			off = next
		case skUint:
			major, arg, next, ok := shortestHead(b, off)
			if !ok || major != 0 || arg > f.max {
				return false
			}
			storeInt(base, f, arg)
			off = next
		case skFloat32:
			x, next, ok := float16Special(b, off)
			switch {
			case ok:
				*fieldAt[float32](base, f.off) = float32(x)
			case ib == 0xfa && len(b)-off >= 5:
				x := math.Float32frombits(binary.BigEndian.Uint32(b[off+1:]))
				if x != x || x > math.MaxFloat32 || x < -math.MaxFloat32 {
					return false // the encoder writes these as half precision
				}
				*fieldAt[float32](base, f.off) = x
				next = off + 5
			default:
				return false
			}
			off = next
		case skFloat64:
			x, next, ok := float16Special(b, off)
			switch {
			case ok:
				*fieldAt[float64](base, f.off) = x
			case ib == 0xfb && len(b)-off >= 9:
				x = math.Float64frombits(binary.BigEndian.Uint64(b[off+1:]))
				if x != x || x > math.MaxFloat64 || x < -math.MaxFloat64 {
					return false
				}
				*fieldAt[float64](base, f.off) = x
				next = off + 9
			default:
				return false
			}
			off = next
		case skString:
			major, n, next, ok := shortestHead(b, off)
			if !ok || major != 3 || n > uint64(len(b)-next) {
				return false
			}
			s := b[next : next+int(n)]
			if !utf8.Valid(s) {
				return false // the library's error
			}
			*fieldAt[string](base, f.off) = string(s)
			off = next + int(n)
		case skBytes:
			if ib == cborNull {
				*fieldAt[[]byte](base, f.off) = nil
				off++
				break
			}
			major, n, next, ok := shortestHead(b, off)
			if !ok || major != 2 || n > uint64(len(b)-next) {
				return false
			}
			// A copy: the frame's memory is reused. bytes.Clone does not
			// zero what it then overwrites (make and copy would), and an
			// empty (non-nil) slice gives a non-nil empty slice, as from
			// the library.
			*fieldAt[[]byte](base, f.off) = bytes.Clone(b[next : next+int(n)])
			off = next + int(n)
		}
	}
	return off == len(b)
}

// halfSpecial returns the half-precision bits the library writes for NaN
// and the infinities (NaNConvert7e00, InfConvertFloat16), and false for
// any other value. A float32 converts to float64 keeping both.
func halfSpecial(x float64) ([2]byte, bool) {
	switch {
	case math.IsNaN(x):
		return [2]byte{0x7e, 0x00}, true
	case math.IsInf(x, 1):
		return [2]byte{0x7c, 0x00}, true
	case math.IsInf(x, -1):
		return [2]byte{0xfc, 0x00}, true
	}
	return [2]byte{}, false
}

// shortestHead reads the head at b[off]: its major type, its argument and
// the offset after it. It fails on an argument not in its shortest form,
// an indefinite length or a reserved value, which are for the library.
func shortestHead(b []byte, off int) (major byte, arg uint64, next int, ok bool) {
	major, info, arg, next, ok := readHead(b, off)
	if !ok {
		return 0, 0, 0, false
	}
	// Shortest: the argument would not fit the next smaller form.
	if n := next - off - 1; info >= 24 && (arg < 24 || (n > 1 && arg>>(4*n) == 0)) {
		return 0, 0, 0, false
	}
	return major, arg, next, true
}

// float16Special decodes the half-precision values the encoder writes:
// NaN and the infinities.
func float16Special(b []byte, off int) (x float64, next int, ok bool) {
	if b[off] != 0xf9 || len(b)-off < 3 {
		return 0, 0, false
	}
	switch binary.BigEndian.Uint16(b[off+1:]) {
	case 0x7e00:
		x = structNaN64
	case 0x7c00:
		x = math.Inf(1)
	case 0xfc00:
		x = math.Inf(-1)
	default:
		return 0, 0, false
	}
	return x, off + 3, true
}
