package core

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"
	"unsafe"
)

// FuzzStructCodec checks the compiled struct codec against the cbor
// library, differentially:
//   - any bytes decode (fast path, else fallback) to the library's value,
//     or fail with the library's error, for three plain struct types;
//   - a value built from the fuzzer's arguments encodes to the library's
//     bytes, which the fast path accepts and decodes back to the value
//     (NaNs as any NaN: the encoder writes every NaN as 0xf97e00);
//   - whatever decoded re-encodes the same way.
func FuzzStructCodec(f *testing.F) {
	for _, v := range []any{
		scMixed{}, scMixed{ID: -1, Name: "task", OK: true, Score: math.NaN(), Ratio: 0.5, Data: []byte{}},
		scBytes{Data: make([]byte, 64)}, scBytes{},
		scAll{I8: math.MinInt8, U64: math.MaxUint64, F32: float32(math.Inf(1)), S: "é", Bs: []byte{1}},
	} {
		var buf bytes.Buffer
		if err := encMode.MarshalToBuffer(v, &buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), int64(0), "", false, 0.0, float32(0), []byte(nil))
	}
	for _, b := range nonCanonicalMixed() {
		f.Add(b, int64(0), "", false, 0.0, float32(0), []byte(nil))
	}
	for _, b := range invalidBodies() {
		f.Add(b, int64(0), "", false, 0.0, float32(0), []byte(nil))
	}
	f.Add([]byte(nil), int64(math.MinInt64), "日本", true, math.Inf(-1), float32(math.NaN()), []byte{})
	f.Add([]byte(nil), int64(24), "\xff", true, math.Copysign(0, -1), float32(1e-45), []byte("x"))

	mixed := fuzzPlan[scMixed](f)
	all := fuzzPlan[scAll](f)
	small := fuzzPlan[scBytes](f)
	f.Fuzz(func(t *testing.T, data []byte, id int64, name string, ok bool, score float64, ratio float32, raw []byte) {
		fuzzDecode[scMixed](t, mixed, data)
		fuzzDecode[scAll](t, all, data)
		fuzzDecode[scBytes](t, small, data)

		fuzzEncode(t, mixed, scMixed{ID: id, Name: name, OK: ok, Score: score, Ratio: ratio, Data: raw})
		fuzzEncode(t, small, scBytes{Data: raw})
		fuzzEncode(t, all, scAll{
			B: ok, I: int(id), I8: int8(id), I16: int16(id), I32: int32(id), I64: id,
			U: uint(id), U8: uint8(id), U16: uint16(id), U32: uint32(id), U64: uint64(id),
			F32: ratio, F64: score, S: name, Bs: raw,
		})
	})
}

func fuzzPlan[T any](f *testing.F) *structPlan {
	plan, why := structPlanFor(reflect.TypeFor[T]())
	if plan == nil {
		f.Fatalf("%v is not eligible: %s", reflect.TypeFor[T](), why)
	}
	return plan
}

// fuzzDecode decodes data like the library, and re-encodes what it
// decoded like the library.
func fuzzDecode[T any](t *testing.T, plan *structPlan, data []byte) {
	if !checkDecodeLikeLibrary[T](t, plan, data) {
		return
	}
	v, err := structDecoder[T](plan)(data, false)
	if err != nil {
		t.Fatal(err)
	}
	fuzzEncode(t, plan, v.(T))
}

// fuzzEncode encodes v (as T and *T) like the library and decodes it back
// with the fast path.
func fuzzEncode[T any](t *testing.T, plan *structPlan, v T) {
	enc := structEncoder[T](plan)
	for _, body := range []any{v, &v} {
		var fast, lib bytes.Buffer
		if !enc(&fast, body) {
			t.Fatalf("the fast encoder refused a %T", body)
		}
		if err := encMode.MarshalToBuffer(body, &lib); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast.Bytes(), lib.Bytes()) {
			t.Fatalf("encoding %#v:\nfast    %x\nlibrary %x", body, fast.Bytes(), lib.Bytes())
		}
	}
	var buf bytes.Buffer
	enc(&buf, v)
	got := new(T)
	accepted := plan.decode(buf.Bytes(), unsafe.Pointer(got))
	switch {
	case !validStrings(v):
		// Such a string encodes, but does not decode: that is the
		// library's error, and the fast path must leave it to it.
		if accepted {
			t.Fatalf("the fast path accepted invalid UTF-8 in %x", buf.Bytes())
		}
	case !accepted:
		t.Fatalf("the fast path refused its own encoding %x", buf.Bytes())
	case !sameValue(*got, v, true):
		t.Fatalf("round trip of %#v gave %#v", v, *got)
	}
	checkDecodeLikeLibrary[T](t, plan, buf.Bytes())
}

// validStrings reports whether the string fields of struct v are UTF-8.
func validStrings(v any) bool {
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.String && !utf8.ValidString(f.String()) {
			return false
		}
	}
	return true
}
