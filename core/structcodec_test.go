package core

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// Eligible types of the struct codec tests.
type (
	scBytes struct{ Data []byte }

	scMixed struct {
		ID    int64
		Name  string
		OK    bool
		Score float64
		Ratio float32
		Data  []byte
	}

	scAll struct {
		B   bool
		I   int
		I8  int8
		I16 int16
		I32 int32
		I64 int64
		U   uint
		U8  uint8
		U16 uint16
		U32 uint32
		U64 uint64
		F32 float32
		F64 float64
		S   string
		Bs  []byte
	}

	// scNamed has named field types without codec methods (String is not
	// one) and a field name that is not ASCII.
	scNamed struct {
		Level scLevel
		Blob  scBlob
		Name  scName
		Größe uint16
	}
	scLevel int
	scBlob  []byte
	scName  string

	// scWide has more than 23 fields: its map head takes two bytes.
	scWide struct {
		A0, A1, A2, A3, A4, A5, A6, A7, A8, A9           uint8
		B0, B1, B2, B3, B4, B5, B6, B7, B8, B9           int16
		C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, Last, Zz string
	}
)

func (scLevel) String() string { return "level" }

// Ineligible types that need methods.
type (
	scTextValue struct{ X int }
	scBinaryPtr struct{ X int }
	scCBORField struct{ V scCBORInt }
	scCBORInt   int
	scJSONField struct{ V scJSON }
	scJSON      string
	scByteElems struct{ V []scByte }
	scByte      uint8
)

func (scTextValue) MarshalText() ([]byte, error)  { return nil, nil }
func (*scBinaryPtr) UnmarshalBinary([]byte) error { return nil }
func (scCBORInt) MarshalCBOR() ([]byte, error)    { return []byte{0}, nil }
func (*scJSON) UnmarshalJSON([]byte) error        { return nil }

// Methods the cbor library does not know leave a type eligible.
func (scLevel) MarshalYAML() (any, error) { return nil, nil }
func (*scMixed) Reset()                   {}

func TestStructPlanEligibility(t *testing.T) {
	for _, tc := range []struct {
		typ reflect.Type
		why string // "" for eligible, else a part of the reason
	}{
		{reflect.TypeFor[scBytes](), ""},
		{reflect.TypeFor[scMixed](), ""},
		{reflect.TypeFor[scAll](), ""},
		{reflect.TypeFor[scNamed](), ""},
		{reflect.TypeFor[scWide](), ""},
		{reflect.TypeFor[struct{ X []uint8 }](), ""},
		{reflect.TypeFor[struct{ X, Y int }](), ""},

		{reflect.TypeFor[int](), "not a struct"},
		{reflect.TypeFor[*scBytes](), "not a struct"},
		{reflect.TypeFor[struct{}](), "no fields"},
		{structWithFields(structMaxFields + 1), "more than 64 fields"},
		{reflect.TypeFor[struct{ x int }](), "field x is not exported"},
		{reflect.TypeFor[struct {
			X int
			_ struct{} `cbor:",toarray"`
		}](), "field _ is not exported"},
		{reflect.TypeFor[struct{ scBytes }](), "field scBytes is not exported"},
		{reflect.TypeFor[struct{ *scBytes }](), "field scBytes is not exported"},
		{reflect.TypeFor[struct{ SCAlias }](), "field SCAlias is embedded"},
		{reflect.TypeFor[struct {
			X int `cbor:"x"`
		}](), "field X has a cbor tag"},
		{reflect.TypeFor[struct {
			X int `cbor:""`
		}](), "field X has a cbor tag"},
		{reflect.TypeFor[struct {
			X int `json:"x,omitempty"`
		}](), "field X has a json tag"},
		{reflect.TypeFor[struct{ X uintptr }](), "field X is of kind uintptr"},
		{reflect.TypeFor[struct{ X *int }](), "field X is of kind ptr"},
		{reflect.TypeFor[struct{ X [4]byte }](), "field X is of kind array"},
		{reflect.TypeFor[struct{ X []int }](), "field X is a slice of int"},
		{reflect.TypeFor[struct{ X map[string]int }](), "field X is of kind map"},
		{reflect.TypeFor[struct{ X any }](), "field X is of kind interface"},
		{reflect.TypeFor[struct{ X complex128 }](), "field X is of kind complex128"},
		{reflect.TypeFor[struct{ X scBytes }](), "field X is of kind struct"},
		{reflect.TypeFor[struct{ X time.Time }](), "field X has method MarshalBinary"},
		{reflect.TypeFor[struct{ X time.Duration }](), ""}, // an int64 with String only
		{reflect.TypeFor[struct{ X cbor.RawMessage }](), "field X has method MarshalCBOR"},
		{reflect.TypeFor[struct{ X cbor.ByteString }](), "field X has method MarshalCBOR"},
		{reflect.TypeFor[struct{ X cbor.SimpleValue }](), "field X has method MarshalCBOR"},
		{reflect.TypeFor[scTextValue](), "the type has method MarshalText"},
		{reflect.TypeFor[scBinaryPtr](), "the type has method UnmarshalBinary"},
		{reflect.TypeFor[scCBORField](), "field V has method MarshalCBOR"},
		{reflect.TypeFor[scJSONField](), "field V has method UnmarshalJSON"},
		{reflect.TypeFor[scByteElems](), "field V is a slice of core.scByte"},
		{reflect.TypeFor[struct{ X net.IP }](), "field X has method MarshalText"},
	} {
		plan, why := structPlanFor(tc.typ)
		switch {
		case tc.why == "" && plan == nil:
			t.Errorf("%v: not eligible (%s), want eligible", tc.typ, why)
		case tc.why != "" && plan != nil:
			t.Errorf("%v: eligible, want not (%s)", tc.typ, tc.why)
		case tc.why != "" && !strings.Contains(why, tc.why):
			t.Errorf("%v: not eligible because %q, want %q", tc.typ, why, tc.why)
		}
	}
}

// SCAlias is an exported type to embed.
type SCAlias struct{ A int }

// structWithFields returns a struct type of n int fields.
func structWithFields(n int) reflect.Type {
	fs := make([]reflect.StructField, n)
	for i := range fs {
		fs[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[int]()}
	}
	return reflect.StructOf(fs)
}

// TestStructCodecMatchesTheLibrary encodes values of every field kind,
// extremes included, with both codecs, and decodes the library's bytes with
// both: the bytes and the values must be the same, and the fast path must
// accept every canonical encoding.
func TestStructCodecMatchesTheLibrary(t *testing.T) {
	long := strings.Repeat("long string ", 3000)
	nan32 := math.Float32frombits(0x7fa00001) // a signalling NaN with a payload
	for i, v := range []scAll{
		{},
		{B: true, I: math.MaxInt, I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64,
			U: math.MaxUint, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64,
			F32: math.MaxFloat32, F64: math.MaxFloat64, S: long, Bs: bytes.Repeat([]byte{0xff}, 70000)},
		{I: math.MinInt, I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64,
			F32: -math.MaxFloat32, F64: -math.MaxFloat64, S: "é", Bs: []byte{}},
		{F32: float32(math.NaN()), F64: math.NaN(), S: "日本語 ✓ \U0001F600"},
		{F32: nan32, F64: math.Float64frombits(0xfff0000000000001)},
		{F32: float32(math.Inf(1)), F64: math.Inf(-1)},
		{F32: float32(math.Inf(-1)), F64: math.Inf(1)},
		{F32: float32(math.Copysign(0, -1)), F64: math.Copysign(0, -1)},
		{F32: math.SmallestNonzeroFloat32, F64: math.SmallestNonzeroFloat64},
		{F32: 1, F64: 0.1, I: 23, I8: 24, I16: 255, I32: 256, I64: 65535, U: 65536, U8: 23, U16: 24, U32: 4294967295, U64: 4294967296},
		{I: -24, I8: -25, I16: -256, I32: -257, I64: -65536, S: strings.Repeat("x", 23)},
		{I: -65537, I32: -4294967296 / 2, I64: -4294967297, S: strings.Repeat("x", 24), Bs: make([]byte, 256)},
	} {
		t.Run(fmt.Sprintf("scAll/%d", i), func(t *testing.T) { checkLikeLibrary(t, v) })
	}
	for i, v := range []scMixed{
		{},
		{ID: 1, Name: "task", OK: true, Score: 0.5, Ratio: 0.25, Data: []byte("data")},
		{ID: -1, Data: []byte{}},
	} {
		t.Run(fmt.Sprintf("scMixed/%d", i), func(t *testing.T) { checkLikeLibrary(t, v) })
	}
	t.Run("scBytes", func(t *testing.T) {
		checkLikeLibrary(t, scBytes{})
		checkLikeLibrary(t, scBytes{Data: []byte{}})
		checkLikeLibrary(t, scBytes{Data: make([]byte, 64)})
	})
	t.Run("scNamed", func(t *testing.T) {
		checkLikeLibrary(t, scNamed{})
		checkLikeLibrary(t, scNamed{Level: -3, Blob: scBlob("blob"), Name: "n", Größe: 1000})
	})
	t.Run("scWide", func(t *testing.T) {
		checkLikeLibrary(t, scWide{})
		checkLikeLibrary(t, scWide{A9: 200, B9: -300, Last: "last", Zz: "zz"})
	})
	t.Run("duration", func(t *testing.T) {
		checkLikeLibrary(t, struct{ D time.Duration }{time.Hour})
	})
}

// checkLikeLibrary checks v against the library, as T and *T.
func checkLikeLibrary[T any](t *testing.T, v T) {
	t.Helper()
	plan, why := structPlanFor(reflect.TypeFor[T]())
	if plan == nil {
		t.Fatalf("%T is not eligible: %s", v, why)
	}
	enc := structEncoder[T](plan)
	for _, body := range []any{v, &v, (*T)(nil)} {
		fast, lib := fastEncode(t, enc, body), libraryEncode(t, body)
		if !bytes.Equal(fast, lib) {
			t.Fatalf("encoding %T:\nfast    %x\nlibrary %x", body, fast, lib)
		}
	}
	lib := libraryEncode(t, v)
	if !plan.decode(lib, unsafe.Pointer(new(T))) {
		t.Errorf("the fast path refused the canonical encoding %x", lib)
	}
	checkDecodeLikeLibrary[T](t, plan, lib)

	// The decoded byte slices are copies: the frame's memory is reused.
	got, err := structDecoder[T](plan)(lib, false)
	if err != nil {
		t.Fatal(err)
	}
	want := libraryDecode[T](t, lib)
	clear(lib)
	if !sameValue(got, want, false) {
		t.Errorf("the decoded value changed with the buffer it was decoded from")
	}
}

func fastEncode(t *testing.T, enc func(*bytes.Buffer, any) bool, body any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("prefix") // encodeFrame appends to an envelope
	if !enc(&buf, body) {
		t.Fatalf("the fast encoder refused a %T", body)
	}
	return buf.Bytes()[len("prefix"):]
}

func libraryEncode(t *testing.T, body any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := encMode.MarshalToBuffer(body, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func libraryDecode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := decMode.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkDecodeLikeLibrary decodes b with the struct codec (fast path and
// fallback), as T and *T, and with the library: both must fail with the
// same error or give the same value. It reports whether b was valid.
func checkDecodeLikeLibrary[T any](t testing.TB, plan *structPlan, b []byte) bool {
	t.Helper()
	dec := structDecoder[T](plan)
	var want T
	werr := decMode.Unmarshal(b, &want)
	for _, ptr := range []bool{false, true} {
		if ptr && len(b) == 1 && b[0] == cborNull {
			continue // (*T)(nil), before either codec
		}
		got, err := dec(b, ptr)
		switch {
		case err != nil && werr != nil:
			if err.Error() != werr.Error() {
				t.Errorf("decoding %x (ptr %v): error %q, the library's is %q", b, ptr, err, werr)
			}
		case err != nil || werr != nil:
			t.Errorf("decoding %x (ptr %v): error %v, the library's is %v", b, ptr, err, werr)
		case ptr:
			if !sameValue(*got.(*T), want, false) {
				t.Errorf("decoding %x as a pointer:\ngot     %#v\nlibrary %#v", b, *got.(*T), want)
			}
		default:
			if !sameValue(got.(T), want, false) {
				t.Errorf("decoding %x:\ngot     %#v\nlibrary %#v", b, got, want)
			}
		}
	}
	return werr == nil
}

// sameValue is reflect.DeepEqual for the struct codec's types, but floats
// compare by bit pattern (NaN equals itself), or, with anyNaN, all NaNs
// are equal.
func sameValue(a, b any, anyNaN bool) bool {
	return sameRV(reflect.ValueOf(a), reflect.ValueOf(b), anyNaN)
}

func sameRV(a, b reflect.Value, anyNaN bool) bool {
	if a.IsValid() != b.IsValid() || a.IsValid() && a.Type() != b.Type() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameRV(a.Elem(), b.Elem(), anyNaN)
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameRV(a.Field(i), b.Field(i), anyNaN) {
				return false
			}
		}
		return true
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		if anyNaN && x != x && y != y {
			return true
		}
		return floatBits(a) == floatBits(b)
	case reflect.Slice:
		return a.IsNil() == b.IsNil() && bytes.Equal(a.Bytes(), b.Bytes())
	default:
		return a.Equal(b)
	}
}

// floatBits is the bit pattern of a float value, read without converting
// it (a conversion could change a NaN).
func floatBits(v reflect.Value) uint64 {
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	if v.Kind() == reflect.Float32 {
		return uint64(*(*uint32)(p.UnsafePointer()))
	}
	return *(*uint64)(p.UnsafePointer())
}

// CBOR building blocks for hand-made encodings.
func cborHead(major byte, n uint64) []byte { return appendUint(nil, major, n) }
func cborText(s string) []byte             { return append(cborHead(3, uint64(len(s))), s...) }
func cborF32(x float32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0xfa}, math.Float32bits(x))
}
func cborF64(x float64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0xfb}, math.Float64bits(x))
}

// cborPair is one map entry, encoded.
type cborPair struct{ k, v []byte }

// canonicalPairs returns the entries of the canonical encoding of the zero
// T, with the values in set (by field name) instead.
func canonicalPairs[T any](set map[string][]byte) []cborPair {
	t := reflect.TypeFor[T]()
	ps := make([]cborPair, t.NumField())
	for i := range ps {
		f := t.Field(i)
		v, ok := set[f.Name]
		if !ok {
			var buf bytes.Buffer
			if err := encMode.MarshalToBuffer(reflect.Zero(f.Type).Interface(), &buf); err != nil {
				panic(err)
			}
			v = buf.Bytes()
		}
		ps[i] = cborPair{cborText(f.Name), v}
	}
	return ps
}

// cborMap encodes a map of the entries under head (nil: the shortest).
func cborMap(head []byte, ps []cborPair) []byte {
	if head == nil {
		head = cborHead(5, uint64(len(ps)))
	}
	b := slices.Clone(head)
	for _, p := range ps {
		b = append(append(b, p.k...), p.v...)
	}
	return b
}

// mixedBody is the canonical encoding of a zero scMixed with the values in
// set.
func mixedBody(set map[string][]byte) []byte { return cborMap(nil, canonicalPairs[scMixed](set)) }

// nonCanonicalMixed are valid encodings of scMixed that the encoder never
// writes: the fast path must leave them to the library.
func nonCanonicalMixed() map[string][]byte {
	data := map[string][]byte{"ID": {0x07}, "Name": cborText("x"), "OK": {0xf5}, "Score": cborF64(2.5), "Ratio": cborF32(0.5), "Data": append(cborHead(2, 2), "ab"...)}
	ps := canonicalPairs[scMixed](data)
	swapped := slices.Clone(ps)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	extra := append(slices.Clone(ps), cborPair{cborText("Extra"), []byte{0x01}})
	withKey := func(i int, k []byte) []byte {
		q := slices.Clone(ps)
		q[i].k = k
		return cborMap(nil, q)
	}
	with := func(name string, v []byte) []byte {
		set := maps.Clone(data)
		set[name] = v
		return mixedBody(set)
	}
	return map[string][]byte{
		"keys reordered":                  cborMap(nil, swapped),
		"extra unknown key":               cborMap(nil, extra),
		"extra key that is an integer":    cborMap(nil, append(slices.Clone(ps), cborPair{[]byte{0x01}, []byte{0x01}})),
		"missing key":                     cborMap(nil, ps[:5]),
		"no keys":                         {0xa0},
		"key in another case":             withKey(0, cborText("id")),
		"key with a wider head":           withKey(0, append([]byte{0x78, 2}, "ID"...)),
		"map head wider":                  cborMap([]byte{0xb8, 6}, ps),
		"integer in a 1-byte head":        with("ID", []byte{0x18, 7}),
		"integer in an 8-byte head":       with("ID", []byte{0x1b, 0, 0, 0, 0, 0, 0, 0, 7}),
		"negative in a 2-byte head":       with("ID", []byte{0x39, 0, 7}),
		"string with a wider head":        with("Name", []byte{0x78, 1, 'x'}),
		"bytes with a wider head":         with("Data", []byte{0x58, 2, 'a', 'b'}),
		"float64 value in float32 field":  with("Ratio", cborF64(0.5)),
		"float32 value in float64 field":  with("Score", cborF32(2.5)),
		"half float":                      with("Score", []byte{0xf9, 0x3c, 0x00}),
		"half float NaN with a payload":   with("Score", []byte{0xf9, 0x7e, 0x01}),
		"NaN as float64":                  with("Score", cborF64(math.Float64frombits(0x7ff8000000000001))),
		"NaN as float32":                  with("Ratio", cborF32(math.Float32frombits(0x7fa00001))),
		"infinity as float64":             with("Score", cborF64(math.Inf(1))),
		"infinity as float32":             with("Ratio", cborF32(float32(math.Inf(-1)))),
		"integer in a float field":        with("Score", []byte{0x03}),
		"negative integer in float field": with("Ratio", []byte{0x20}),
		"null string":                     with("Name", []byte{0xf6}),
		"undefined bytes":                 with("Data", []byte{0xf7}),
		"null bool":                       with("OK", []byte{0xf6}),
		"null integer":                    with("ID", []byte{0xf6}),
		"tagged integer":                  with("ID", []byte{0xd8, 100, 0x07}),
		"self-described body":             append([]byte{0xd9, 0xd9, 0xf7}, mixedBody(data)...),
		"null body":                       {0xf6},
	}
}

// TestStructDecodeLeavesOtherEncodingsToTheLibrary: valid encodings the
// encoder never writes decode as the library decodes them.
func TestStructDecodeLeavesOtherEncodingsToTheLibrary(t *testing.T) {
	plan, _ := structPlanFor(reflect.TypeFor[scMixed]())
	for name, b := range nonCanonicalMixed() {
		t.Run(name, func(t *testing.T) {
			if plan.decode(b, unsafe.Pointer(new(scMixed))) {
				t.Errorf("the fast path accepted %x", b)
			}
			if !checkDecodeLikeLibrary[scMixed](t, plan, b) {
				t.Errorf("%x is not valid for the library: fix the test", b)
			}
		})
	}
}

// invalidBodies are encodings the library refuses, for scMixed and scAll.
func invalidBodies() map[string][]byte {
	valid := mixedBody(map[string][]byte{"Name": cborText("name"), "Data": append(cborHead(2, 3), "abc"...)})
	all := func(name string, v []byte) []byte {
		return cborMap(nil, canonicalPairs[scAll](map[string][]byte{name: v}))
	}
	dup := canonicalPairs[scMixed](nil)
	dup[1] = dup[0]
	bad := map[string][]byte{
		"empty":                          {},
		"trailing byte":                  append(slices.Clone(valid), 0x00),
		"trailing item":                  append(slices.Clone(valid), valid...),
		"invalid UTF-8 in a string":      mixedBody(map[string][]byte{"Name": {0x62, 'a', 0xff}}),
		"invalid UTF-8 in a long one":    mixedBody(map[string][]byte{"Name": append([]byte{0x78, 30}, append(bytes.Repeat([]byte{'a'}, 29), 0xc3)...)}),
		"invalid UTF-8 in a key":         cborMap(nil, append(canonicalPairs[scMixed](nil), cborPair{[]byte{0x62, 0xc3, 0x28}, []byte{0}})),
		"string for an integer":          mixedBody(map[string][]byte{"ID": cborText("1")}),
		"integer for a string":           mixedBody(map[string][]byte{"Name": {0x01}}),
		"bytes for a string":             mixedBody(map[string][]byte{"Name": {0x41, 'a'}}),
		"string for bytes":               mixedBody(map[string][]byte{"Data": cborText("a")}),
		"integer for a bool":             mixedBody(map[string][]byte{"OK": {0x01}}),
		"array for a struct":             {0x81, 0x01},
		"integer for a struct":           {0x01},
		"duplicate key":                  cborMap(nil, dup),
		"byte string key":                cborMap(nil, append(canonicalPairs[scMixed](nil), cborPair{[]byte{0x42, 'I', 'D'}, []byte{0}})),
		"indefinite map":                 append(append([]byte{0xbf}, valid[1:]...), 0xff),
		"indefinite string":              mixedBody(map[string][]byte{"Name": {0x7f, 0x61, 'a', 0xff}}),
		"int64 overflow":                 mixedBody(map[string][]byte{"ID": {0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}}),
		"int64 underflow":                mixedBody(map[string][]byte{"ID": {0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0}}),
		"int8 overflow":                  all("I8", []byte{0x18, 128}),
		"int8 underflow":                 all("I8", []byte{0x38, 128}),
		"int16 overflow":                 all("I16", []byte{0x19, 0x80, 0x00}),
		"int32 underflow":                all("I32", []byte{0x3a, 0x80, 0, 0, 0}),
		"uint8 overflow":                 all("U8", []byte{0x19, 0x01, 0x00}),
		"uint16 overflow":                all("U16", []byte{0x1a, 0, 1, 0, 0}),
		"uint32 overflow":                all("U32", []byte{0x1b, 0, 0, 0, 1, 0, 0, 0, 0}),
		"negative for a uint":            all("U", []byte{0x20}),
		"negative for a uint64":          all("U64", []byte{0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		"float for an integer":           all("I", cborF64(1)),
		"float32 overflow":               all("F32", cborF64(1e300)),
		"reserved additional info":       mixedBody(map[string][]byte{"ID": {0x1c}}),
		"bignum tag for an integer":      all("I8", []byte{0xc2, 0x41, 0xff}),
		"string longer than the body":    mixedBody(map[string][]byte{"Name": {0x78, 200, 'a'}}),
		"length beyond any body":         mixedBody(map[string][]byte{"Data": {0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}),
		"a break where a value belongs":  mixedBody(map[string][]byte{"OK": {0xff}}),
		"two-byte simple value below 32": mixedBody(map[string][]byte{"OK": {0xf8, 0x14}}),
	}
	for i := range len(valid) {
		bad[fmt.Sprintf("truncated to %d bytes", i)] = valid[:i]
	}
	return bad
}

// TestStructDecodeErrorsAreTheLibrarys: what the library refuses, the
// struct codec refuses with the same error.
func TestStructDecodeErrorsAreTheLibrarys(t *testing.T) {
	mixed, _ := structPlanFor(reflect.TypeFor[scMixed]())
	all, _ := structPlanFor(reflect.TypeFor[scAll]())
	for name, b := range invalidBodies() {
		t.Run(name, func(t *testing.T) {
			if mixed.decode(b, unsafe.Pointer(new(scMixed))) || all.decode(b, unsafe.Pointer(new(scAll))) {
				t.Errorf("the fast path accepted %x", b)
			}
			valid := checkDecodeLikeLibrary[scMixed](t, mixed, b)
			if checkDecodeLikeLibrary[scAll](t, all, b) && valid {
				t.Errorf("%x is valid for the library: fix the test", b)
			}
		})
	}
}

// TestStructDecodeOfHalfFloatsIsTheLibrarys pins the values the fast path
// gives for the half-precision NaN and infinities to the library's.
func TestStructDecodeOfHalfFloatsIsTheLibrarys(t *testing.T) {
	plan, _ := structPlanFor(reflect.TypeFor[scMixed]())
	for _, h := range [][]byte{{0xf9, 0x7e, 0x00}, {0xf9, 0x7c, 0x00}, {0xf9, 0xfc, 0x00}} {
		b := mixedBody(map[string][]byte{"Score": h, "Ratio": h})
		if !plan.decode(b, unsafe.Pointer(new(scMixed))) {
			t.Errorf("the fast path refused %x", h)
		}
		checkDecodeLikeLibrary[scMixed](t, plan, b)
	}
}

// TestStructCodecIsHookedIn: registered plain structs get the compiled
// codec, others keep the library's, and encodeFrame writes the library's
// bytes either way.
func TestStructCodecIsHookedIn(t *testing.T) {
	RegisterMessage[scMixed]("coretest.scMixed")
	RegisterMessage[scTextValue]("coretest.scTextValue")
	if mt, _, _ := lookupName("coretest.scMixed"); mt.encode == nil {
		t.Error("scMixed has no compiled encoder")
	}
	if mt, _, _ := lookupName("coretest.scTextValue"); mt.encode != nil {
		t.Error("scTextValue has a compiled encoder")
	}
	if mt, _, _ := lookupName("int64"); mt.encode != nil {
		t.Error("int64 has a compiled encoder")
	}
	v := scMixed{ID: 7, Name: "seven", Score: 7.5, Data: []byte{7}}
	for _, body := range []any{v, &v, (*scMixed)(nil)} {
		wire, _, err := checkType(body)
		if err != nil {
			t.Fatal(err)
		}
		frame := mustFrame(t, &header{kind: kindSend, to: "x", typ: wire}, body, 1<<20)
		var env envelope
		if err := decodeEnvelope(frame, &env); err != nil {
			t.Fatal(err)
		}
		if want := libraryEncode(t, body); !bytes.Equal(env.Body, want) {
			t.Errorf("%T: body %x, the library's is %x", body, env.Body, want)
		}
		got, _, err := decodeBody(env.Type, env.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !sameValue(got, body, false) {
			t.Errorf("%T: decoded %#v", body, got)
		}
	}
}

// TestStructCodecRoundTripsBetweenEnvs sends and asks with plain structs,
// as values and pointers, between two envs. The transport is an in-memory
// pipe: package core's tests cannot import transports/inproc (it imports
// core); the core_test benchmarks and tests over inproc send plain structs
// too (benchMsg, shared).
func TestStructCodecRoundTripsBetweenEnvs(t *testing.T) {
	RegisterMessage[scMixed]("coretest.scMixed")
	RegisterMessage[scAll]("coretest.scAll")
	tr := &pipeTransport{listeners: map[string]*pipeListener{}}
	srv, err := NewEnv(Config{Name: "srv", Listen: "pipe://srv", Transports: []Transport{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	cli, err := NewEnv(Config{Name: "cli", Transports: []Transport{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Shutdown(context.Background())

	got := make(chan any, 1)
	if _, err := srv.Register("echo", receiveFunc(func(c *Context, msg any) error {
		if c.IsAsk() {
			return c.Reply(msg)
		}
		got <- msg
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ref, err := cli.Lookup(ctx, srv.Address()+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	mixed := scMixed{ID: -42, Name: "héllo", OK: true, Score: math.Inf(1), Ratio: 1.5, Data: []byte{}}
	all := scAll{B: true, I8: -128, U64: math.MaxUint64, F32: float32(math.NaN()), S: "s", Bs: []byte("bytes")}
	for _, msg := range []any{mixed, &mixed, (*scMixed)(nil), all, &all} {
		if err := ref.Send(msg); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !sameValue(m, msg, true) {
				t.Errorf("sent %#v, received %#v", msg, m)
			}
		case <-ctx.Done():
			t.Fatalf("%T was not received", msg)
		}
		reply, err := ref.Ask(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !sameValue(reply, msg, true) {
			t.Errorf("asked %#v, got back %#v", msg, reply)
		}
	}
}

type receiveFunc func(c *Context, msg any) error

func (f receiveFunc) Receive(c *Context, msg any) error { return f(c, msg) }

// pipeTransport connects envs of one process through pipeConns.
type pipeTransport struct {
	mu        sync.Mutex
	listeners map[string]*pipeListener
}

func (*pipeTransport) Scheme() string { return "pipe" }

func (tr *pipeTransport) Listen(addr string, _ ConnOptions) (Listener, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.listeners[addr] != nil {
		return nil, fmt.Errorf("pipe://%s is in use", addr)
	}
	l := &pipeListener{tr: tr, addr: addr, conns: make(chan Conn), done: make(chan struct{})}
	tr.listeners[addr] = l
	return l, nil
}

func (tr *pipeTransport) Dial(ctx context.Context, addr string, _ ConnOptions) (Conn, error) {
	tr.mu.Lock()
	l := tr.listeners[addr]
	tr.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial pipe://%s: %w", addr, net.ErrClosed)
	}
	a, b := newPipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		return nil, fmt.Errorf("dial pipe://%s: %w", addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeListener struct {
	tr    *pipeTransport
	addr  string
	conns chan Conn
	done  chan struct{} // closed by Close
	once  sync.Once
}

func (l *pipeListener) Accept() (Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Addr() string { return l.addr }

func (l *pipeListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.tr.mu.Lock()
		delete(l.tr.listeners, l.addr)
		l.tr.mu.Unlock()
	})
	return nil
}

// Benchmarks: the compiled codec beside the library's, through the same
// entry points as encodeFrame and decodeBody.

func benchStructValues() (scBytes, scMixed) {
	return scBytes{Data: make([]byte, 64)},
		scMixed{ID: 12345, Name: "a task name", OK: true, Score: 0.75, Ratio: 0.5, Data: make([]byte, 16)}
}

func BenchmarkStructCodecEncode(b *testing.B) {
	small, mixed := benchStructValues()
	b.Run("bytes64", func(b *testing.B) { benchEncode(b, small) })
	b.Run("mixed", func(b *testing.B) { benchEncode(b, mixed) })
}

func benchEncode[T any](b *testing.B, v T) {
	plan, _ := structPlanFor(reflect.TypeFor[T]())
	enc := structEncoder[T](plan)
	var body any = v // as Send gets it
	var buf bytes.Buffer
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			enc(&buf, body)
		}
	})
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := encMode.MarshalToBuffer(body, &buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkStructCodecDecode(b *testing.B) {
	small, mixed := benchStructValues()
	b.Run("bytes64", func(b *testing.B) { benchDecode(b, small) })
	b.Run("mixed", func(b *testing.B) { benchDecode(b, mixed) })
}

func benchDecode[T any](b *testing.B, v T) {
	plan, _ := structPlanFor(reflect.TypeFor[T]())
	var buf bytes.Buffer
	if err := encMode.MarshalToBuffer(v, &buf); err != nil {
		b.Fatal(err)
	}
	body := buf.Bytes()
	for _, c := range []struct {
		name string
		dec  func([]byte, bool) (any, error)
	}{
		{"fast", decoderFor[T](plan)},
		{"library", decoderFor[T](nil)}, // the decoder of a type without a plan
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.dec(body, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
