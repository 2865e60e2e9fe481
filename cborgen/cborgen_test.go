package cborgen

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The library with the options rpcenv uses (core/codec.go).
var (
	em cbor.EncMode
	dm cbor.DecMode
)

func init() {
	var err error
	em, err = cbor.EncOptions{
		Time:        cbor.TimeRFC3339Nano,
		IndefLength: cbor.IndefLengthForbidden,
		Sort:        cbor.SortBytewiseLexical,
	}.UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	dm, err = cbor.DecOptions{
		MaxNestedLevels:  32,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// same fails t unless got is the library's encoding of v.
func same(t *testing.T, got []byte, v any) {
	t.Helper()
	want, err := em.Marshal(v)
	if err != nil {
		t.Fatalf("library Marshal(%#v): %v", v, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%T %#v:\n got %x\nwant %x", v, v, got, want)
	}
}

// ok adapts an Append function that cannot fail to the element and value
// functions of AppendSlice and AppendMap.
func ok[T any](f func([]byte, T) []byte) func([]byte, T) ([]byte, error) {
	return func(b []byte, v T) ([]byte, error) { return f(b, v), nil }
}

// must returns a function that fails tb on a non-nil error and otherwise
// returns the bytes, for wrapping calls such as must(t)(AppendSlice(...)).
func must(tb testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatalf("unexpected error: %v", err)
		}
		return b
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var (
	edgeInts = []int64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32,
		math.MaxInt64, -1, -23, -24, -25, -256, -257, -65536, -65537,
		-1 << 32, -1<<32 - 1, math.MinInt64, math.MaxInt8, math.MinInt8,
		math.MaxInt16, math.MinInt16, math.MaxInt32, math.MinInt32,
		math.MaxInt8 + 1, math.MinInt8 - 1, math.MaxInt16 + 1, math.MinInt16 - 1,
		math.MaxInt32 + 1, math.MinInt32 - 1}
	edgeUints = []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32,
		math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}
	edgeFloat64s = []float64{0, math.Copysign(0, -1), 1, -1, 1.5, 0.1, 1e300, -1e-300,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Float64frombits(0x000fffffffffffff), // largest subnormal
		math.MaxFloat32, math.SmallestNonzeroFloat32, 65504, 5.960464477539063e-08,
		math.NaN(), math.Float64frombits(0x7ff0000000000001), // signalling NaN
		math.Float64frombits(0xfff8000000000000), math.Inf(1), math.Inf(-1)}
	edgeFloat32s = []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1.5, 0.1,
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
		math.Float32frombits(0x007fffff), 65504, 3.4e38,
		float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000),
		float32(math.Inf(1)), float32(math.Inf(-1))}
	edgeStrings = []string{"", "a", "héllo, 世界 🌍", strings.Repeat("x", 23),
		strings.Repeat("x", 24), strings.Repeat("y", 255), strings.Repeat("é", 128),
		strings.Repeat("z", 65535), strings.Repeat("w", 65536), "\xff\xfe not utf-8"}
	edgeBytes = [][]byte{nil, {}, {0}, []byte("abc"), bytes.Repeat([]byte{7}, 24),
		bytes.Repeat([]byte{8}, 256), bytes.Repeat([]byte{9}, 65536)}
)

func edgeTimes() []time.Time {
	east := time.FixedZone("East", 5*3600+30*60)
	west := time.FixedZone("", -(23*3600 + 59*60))
	return []time.Time{
		{},
		time.Date(2024, 2, 29, 12, 30, 45, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 30, 45, 123456789, time.UTC),
		time.Date(2024, 2, 29, 12, 30, 45, 120000000, time.UTC),
		time.Date(2024, 2, 29, 12, 30, 45, 1, east),
		time.Date(2024, 2, 29, 12, 30, 45, 0, east),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, west),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, east),
		time.Unix(0, 0),
		time.Unix(1700000000, 5).In(time.FixedZone("X", 3600)),
	}
}

func TestAppendScalars(t *testing.T) {
	same(t, AppendNull(nil), nil)
	same(t, AppendBool(nil, true), true)
	same(t, AppendBool(nil, false), false)
	for _, v := range edgeInts {
		same(t, AppendInt(nil, v), v)
	}
	for _, v := range edgeUints {
		same(t, AppendUint(nil, v), v)
	}
	for _, v := range edgeFloat64s {
		same(t, AppendFloat64(nil, v), v)
	}
	for _, v := range edgeFloat32s {
		same(t, AppendFloat32(nil, v), v)
	}
	for _, v := range edgeStrings {
		same(t, AppendString(nil, v), v)
	}
	for _, v := range edgeBytes {
		same(t, AppendBytes(nil, v), v)
	}
	for _, v := range edgeTimes() {
		got, err := AppendTime(nil, v)
		if err != nil {
			t.Errorf("AppendTime(%v): %v", v, err)
			continue
		}
		same(t, got, v)
	}
	// Appending keeps what b holds.
	if got := AppendInt([]byte("ab"), 500); string(got) != "ab\x19\x01\xf4" {
		t.Errorf("AppendInt onto a prefix: %x", got)
	}
	if got, err := AppendTime([]byte("ab"), time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil || string(got) != "ab\x742000-01-02T03:04:05Z" {
		t.Errorf("AppendTime onto a prefix: %q, %v", got, err)
	}
}

// invalidTimes are times the library refuses to encode.
func invalidTimes() []time.Time {
	return []time.Time{
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", -25*3600)),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 100*3600)),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600+59)),
	}
}

func TestAppendTimeInvalid(t *testing.T) {
	for _, tm := range invalidTimes() {
		_, lerr := em.Marshal(tm)
		// With and without spare capacity, nothing is appended.
		for _, pre := range [][]byte{[]byte("ab"), append(make([]byte, 0, 64), "ab"...)} {
			got, err := AppendTime(pre, tm)
			if lerr == nil || err == nil {
				t.Errorf("%v: library error %v, AppendTime error %v; want both errors", tm, lerr, err)
			}
			if string(got) != "ab" {
				t.Errorf("%v: AppendTime on an error left %q, want %q", tm, got, "ab")
			}
		}
	}
	// Offset seconds are dropped by the RFC 3339 form, so this is valid.
	tm := time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60+59))
	got, err := AppendTime(nil, tm)
	if err != nil {
		t.Errorf("AppendTime(%v): %v", tm, err)
	}
	same(t, got, tm)
}

func TestAppendContainers(t *testing.T) {
	same(t, must(t)(AppendSlice(nil, []int64(nil), ok(AppendInt))), []int64(nil))
	same(t, must(t)(AppendSlice(nil, []int64{}, ok(AppendInt))), []int64{})
	same(t, must(t)(AppendSlice(nil, edgeInts, ok(AppendInt))), edgeInts)
	same(t, must(t)(AppendSlice(nil, edgeStrings, ok(AppendString))), edgeStrings)
	long := make([]int64, 70000)
	for i := range long {
		long[i] = int64(i - 35000)
	}
	same(t, must(t)(AppendSlice(nil, long, ok(AppendInt))), long)
	nested := [][]string{nil, {}, {"a", "b"}}
	same(t, must(t)(AppendSlice(nil, nested, func(b []byte, s []string) ([]byte, error) {
		return AppendSlice(b, s, ok(AppendString))
	})), nested)
	times := append(edgeTimes(), time.Time{})
	same(t, must(t)(AppendSlice(nil, times, AppendTime)), times)

	same(t, must(t)(AppendMap(nil, map[string]int64(nil), AppendString, ok(AppendInt))), map[string]int64(nil))
	same(t, must(t)(AppendMap(nil, map[string]int64{}, AppendString, ok(AppendInt))), map[string]int64{})
	one := map[string]int64{"only": 1}
	same(t, must(t)(AppendMap(nil, one, AppendString, ok(AppendInt))), one)
	// Longer keys have longer heads: "b"*24 (head 78 18) sorts after "z"
	// (61 7a) and "ab" (62 ...) after "b" (61 62), unlike a string sort.
	sm := map[string]int64{}
	for i, k := range []string{"", "a", "b", "z", "ab", "ba", "zz", strings.Repeat("b", 24),
		strings.Repeat("a", 23), strings.Repeat("a", 25), strings.Repeat("c", 256),
		strings.Repeat("d", 255), "é", "A", "~"} {
		sm[k] = int64(i * 1000)
	}
	for range 20 { // map iteration order varies
		same(t, must(t)(AppendMap(nil, sm, AppendString, ok(AppendInt))), sm)
	}
	im := map[int64]string{}
	for _, k := range edgeInts {
		im[k] = "v"
	}
	for range 20 {
		same(t, must(t)(AppendMap(nil, im, AppendInt, ok(AppendString))), im)
	}
	big := map[int64][]byte{}
	for i := range 1000 {
		big[int64(i*i-500000)] = []byte{byte(i)}
	}
	same(t, must(t)(AppendMap(nil, big, AppendInt, ok(AppendBytes))), big)
	nm := map[string]map[uint64]bool{"x": {1: true, 300: false, 2: true}, "yy": nil, "": {}}
	same(t, must(t)(AppendMap(nil, nm, AppendString, func(b []byte, m map[uint64]bool) ([]byte, error) {
		return AppendMap(b, m, AppendUint, ok(AppendBool))
	})), nm)
	tm := map[string]time.Time{}
	for i, v := range edgeTimes() {
		tm[strings.Repeat("t", i)] = v
	}
	same(t, must(t)(AppendMap(nil, tm, AppendString, AppendTime)), tm)
	// Appending after a prefix with spare capacity.
	b := append(make([]byte, 0, 1000), "prefix"...)
	b, err := AppendMap(b, sm, AppendString, ok(AppendInt))
	want, _ := em.Marshal(sm)
	if err != nil || string(b) != "prefix"+string(want) {
		t.Errorf("AppendMap after a prefix: %x, %v", b, err)
	}
}

// TestAppendContainerErrors checks that the first error of elem or val
// stops AppendSlice or AppendMap and is what they return, for values the
// library refuses to encode too.
func TestAppendContainerErrors(t *testing.T) {
	good := time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)
	bad := invalidTimes()[1]
	// timeErr is the error AppendTime returns for bad; counted wraps
	// AppendTime, counting its calls and those after it failed.
	_, timeErr := AppendTime(nil, bad)
	if timeErr == nil {
		t.Fatalf("AppendTime(%v): no error", bad)
	}
	var calls, after int
	var failed bool
	counted := func(b []byte, v time.Time) ([]byte, error) {
		calls++
		if failed {
			after++
		}
		b, err := AppendTime(b, v)
		failed = failed || err != nil
		return b, err
	}
	reset := func() { calls, after, failed = 0, 0, false }
	// wantErr checks err against the library's error for v and timeErr.
	wantErr := func(name string, v any, err error) {
		t.Helper()
		if _, lerr := em.Marshal(v); lerr == nil {
			t.Errorf("%s: library encodes it", name)
		}
		if err == nil || err.Error() != timeErr.Error() {
			t.Errorf("%s: error %v, want %v", name, err, timeErr)
		}
		if after != 0 {
			t.Errorf("%s: %d calls after the error", name, after)
		}
	}

	for _, ts := range [][]time.Time{{bad}, {bad, good}, {good, bad, good, good}} {
		reset()
		_, err := AppendSlice([]byte("pre"), ts, counted)
		wantErr("slice", ts, err)
		if want := slices.Index(ts, bad) + 1; calls != want {
			t.Errorf("slice %v: %d calls, want %d", ts, calls, want)
		}
	}
	nested := [][]time.Time{{good}, {good, bad, good}, {good}}
	reset()
	_, err := AppendSlice(nil, nested, func(b []byte, s []time.Time) ([]byte, error) {
		return AppendSlice(b, s, counted)
	})
	wantErr("nested slice", nested, err)
	if calls != 3 {
		t.Errorf("nested slice: %d calls, want 3", calls)
	}

	// One entry, a few and more than smallMap take different paths.
	for _, n := range []int{1, 3, smallMap + 5} {
		m := map[int64]time.Time{}
		for i := range n {
			m[int64(i)] = good
		}
		m[int64(n/2)] = bad
		for range 10 { // map iteration order varies
			reset()
			var keysAfter int
			_, err := AppendMap([]byte("pre"), m, func(b []byte, k int64) []byte {
				if failed {
					keysAfter++
				}
				return AppendInt(b, k)
			}, counted)
			wantErr(fmt.Sprintf("map of %d", n), m, err)
			if keysAfter != 0 {
				t.Errorf("map of %d: %d keys appended after the error", n, keysAfter)
			}
			if calls < 1 || calls > n {
				t.Errorf("map of %d: %d calls", n, calls)
			}
		}
	}
	nm := map[string]map[string]time.Time{"a": {"x": good}, "b": {"x": good, "y": bad}}
	for range 10 {
		reset()
		_, err := AppendMap(nil, nm, AppendString, func(b []byte, m map[string]time.Time) ([]byte, error) {
			return AppendMap(b, m, AppendString, counted)
		})
		wantErr("nested map", nm, err)
	}

	// Any error is returned as it is, and ends the iteration.
	sentinel := errors.New("sentinel")
	n := 0
	_, err = AppendSlice(nil, []int64{1, 2, 3}, func(b []byte, v int64) ([]byte, error) {
		n++
		if v == 2 {
			return b, sentinel
		}
		return AppendInt(b, v), nil
	})
	if err != sentinel || n != 2 {
		t.Errorf("AppendSlice: error %v after %d calls, want %v after 2", err, n, sentinel)
	}
	n = 0
	_, err = AppendMap(nil, map[string]int64{"a": 1, "b": 2, "c": 3}, AppendString, func(b []byte, v int64) ([]byte, error) {
		n++
		return b, sentinel
	})
	if err != sentinel || n != 1 {
		t.Errorf("AppendMap: error %v after %d calls, want %v after 1", err, n, sentinel)
	}
}

func TestAppendAllocs(t *testing.T) {
	b := make([]byte, 0, 1<<16)
	sm := map[string]int64{}
	for i := range smallMap {
		sm[strings.Repeat("k", i)] = int64(i)
	}
	bm := map[int64]int64{}
	for i := range smallMap + 1 {
		bm[int64(i)] = int64(i)
	}
	tm := time.Date(2024, 2, 29, 12, 30, 45, 123, time.FixedZone("", 3600))
	var err error
	for _, c := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"scalars", 0, func() {
			b = AppendInt(b[:0], -1000)
			b = AppendUint(b, 1<<40)
			b = AppendFloat64(b, 1.5)
			b = AppendFloat32(b, 1.5)
			b = AppendString(b, "hello")
			b = AppendBytes(b, []byte("hello"))
			if b, err = AppendTime(b, tm); err != nil {
				return
			}
			b, err = AppendSlice(b, []int64{1, 2, 3}, ok(AppendInt))
		}},
		{"time slice", 0, func() { b, err = AppendSlice(b[:0], []time.Time{tm, {}}, AppendTime) }},
		{"small map", 0, func() { b, err = AppendMap(b[:0], sm, AppendString, ok(AppendInt)) }},
		{"large map", 1, func() { b, err = AppendMap(b[:0], bm, AppendInt, ok(AppendInt)) }},
	} {
		if n := testing.AllocsPerRun(100, c.f); n > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, n, c.max)
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// check decodes data with the library into a new value of v's type and
// compares it with v, which the Reader produced with Done reporting true.
func check[T any](t *testing.T, data []byte, got T) {
	t.Helper()
	var want T
	if err := dm.Unmarshal(data, &want); err != nil {
		t.Errorf("%x: Reader accepted %#v, library failed: %v", data, got, err)
		return
	}
	if !equal(got, want) {
		t.Errorf("%x: Reader %#v, library %#v", data, got, want)
	}
}

// equal is reflect.DeepEqual with floats compared by their bits, so that
// NaNs compare and -0 differs from 0.
func equal(a, b any) bool {
	return deq(reflect.ValueOf(a), reflect.ValueOf(b))
}

func deq(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float()) ||
			a.Kind() == reflect.Float32 && math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !deq(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		// Match entries by deq rather than by lookup: NaN keys never match.
		var bk, bv []reflect.Value
		for it := b.MapRange(); it.Next(); {
			bk, bv = append(bk, it.Key()), append(bv, it.Value())
		}
		used := make([]bool, len(bk))
	next:
		for it := a.MapRange(); it.Next(); {
			for i, k := range bk {
				if !used[i] && deq(it.Key(), k) && deq(it.Value(), bv[i]) {
					used[i] = true
					continue next
				}
			}
			return false
		}
		return true
	case reflect.Struct:
		if a.Type() == reflect.TypeFor[time.Time]() {
			return reflect.DeepEqual(a.Interface(), b.Interface())
		}
		for i := range a.NumField() {
			if !deq(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// read runs f on a Reader of data and returns its result if Done.
func read[T any](data []byte, f func(*Reader) T) (T, bool) {
	r := NewReader(data)
	v := f(&r)
	return v, r.Done()
}

// accepts checks that f reads data completely and agrees with the library.
func accepts[T any](t *testing.T, data []byte, f func(*Reader) T) {
	t.Helper()
	v, ok := read(data, f)
	if !ok {
		t.Errorf("%x: Reader failed", data)
		return
	}
	check(t, data, v)
}

// refuses checks that f fails on data and never panics; libOK tells whether
// the library accepts data (refusing it is then only slower).
func refuses[T any](t *testing.T, data []byte, f func(*Reader) T, libOK bool) {
	t.Helper()
	r := NewReader(data)
	v := f(&r)
	if r.Done() {
		t.Errorf("%x: Reader accepted %#v, want a failure", data, v)
	}
	var want T
	if err := dm.Unmarshal(data, &want); (err == nil) != libOK {
		t.Errorf("%x: library error %v, want error: %v", data, err, !libOK)
	}
}

func rInt(bits int) func(*Reader) int64 { return func(r *Reader) int64 { return r.Int(bits) } }
func rUint(bits int) func(*Reader) uint64 {
	return func(r *Reader) uint64 { return r.Uint(bits) }
}

func rInt8(r *Reader) int8       { return int8(r.Int(8)) }
func rInt16(r *Reader) int16     { return int16(r.Int(16)) }
func rInt32(r *Reader) int32     { return int32(r.Int(32)) }
func rInt64(r *Reader) int64     { return r.Int(64) }
func rUint8(r *Reader) uint8     { return uint8(r.Uint(8)) }
func rUint16(r *Reader) uint16   { return uint16(r.Uint(16)) }
func rUint32(r *Reader) uint32   { return uint32(r.Uint(32)) }
func rUint64(r *Reader) uint64   { return r.Uint(64) }
func rBool(r *Reader) bool       { return r.Bool() }
func rString(r *Reader) string   { return r.String() }
func rBytes(r *Reader) []byte    { return r.Bytes() }
func rTime(r *Reader) time.Time  { return r.Time() }
func rFloat32(r *Reader) float32 { return r.Float32() }
func rFloat64(r *Reader) float64 { return r.Float64() }

func enc(v any) []byte {
	b, err := em.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReaderScalars(t *testing.T) {
	accepts(t, enc(true), rBool)
	accepts(t, enc(false), rBool)
	for _, v := range edgeInts {
		data := enc(v)
		accepts(t, data, rInt64)
		if v == int64(int8(v)) {
			accepts(t, data, rInt8)
		} else {
			refuses(t, data, rInt8, false)
		}
		if v == int64(int16(v)) {
			accepts(t, data, rInt16)
		} else {
			refuses(t, data, rInt16, false)
		}
		if v == int64(int32(v)) {
			accepts(t, data, rInt32)
		} else {
			refuses(t, data, rInt32, false)
		}
		if v >= 0 {
			accepts(t, data, rUint64)
		} else {
			refuses(t, data, rUint64, false)
		}
	}
	for _, v := range edgeUints {
		data := enc(v)
		accepts(t, data, rUint64)
		if v == uint64(uint8(v)) {
			accepts(t, data, rUint8)
		} else {
			refuses(t, data, rUint8, false)
		}
		if v == uint64(uint16(v)) {
			accepts(t, data, rUint16)
		} else {
			refuses(t, data, rUint16, false)
		}
		if v == uint64(uint32(v)) {
			accepts(t, data, rUint32)
		} else {
			refuses(t, data, rUint32, false)
		}
		if v <= math.MaxInt64 {
			accepts(t, data, rInt64)
		} else {
			refuses(t, data, rInt64, false)
		}
	}
	// -2^64, the most negative CBOR integer.
	refuses(t, unhex("3b ffffffffffffffff"), rInt64, false)
	refuses(t, unhex("3b 8000000000000000"), rInt64, false)
	accepts(t, unhex("3b 7fffffffffffffff"), rInt64)
	// Bits other than 0 (int's size), 8, 16, 32 and 64 are a generator bug.
	refuses(t, enc(1), rInt(7), true)
	refuses(t, enc(1), rUint(12), true)
	accepts(t, enc(1), rInt(0))
	accepts(t, enc(math.MaxUint32), rUint(0))

	for _, v := range edgeFloat64s {
		accepts(t, AppendFloat64(nil, v), rFloat64)
		if a := math.Abs(v); a > math.MaxFloat32 && !math.IsInf(a, 0) {
			refuses(t, AppendFloat64(nil, v), rFloat32, false)
		} else {
			accepts(t, AppendFloat64(nil, v), rFloat32)
		}
	}
	for _, v := range edgeFloat32s {
		accepts(t, AppendFloat32(nil, v), rFloat32)
		accepts(t, AppendFloat32(nil, v), rFloat64)
	}
	for _, v := range edgeStrings {
		if v == "\xff\xfe not utf-8" {
			refuses(t, enc(v), rString, false)
			continue
		}
		accepts(t, enc(v), rString)
	}
	for _, v := range edgeBytes {
		accepts(t, enc(v), rBytes)
	}
	for _, v := range edgeTimes() {
		accepts(t, enc(v), rTime)
	}
}

func TestReaderBytesFresh(t *testing.T) {
	data := enc([]byte("abc"))
	r := NewReader(data)
	b := r.Bytes()
	data[1] = 'X'
	if string(b) != "abc" || !r.Done() {
		t.Errorf("Bytes shares the input: %q", b)
	}
	if b, ok := read(enc([]byte{}), rBytes); !ok || b == nil {
		t.Errorf("empty byte string: %#v, %v; want non-nil empty", b, ok)
	}
}

// TestReaderShare checks that after Share, Bytes returns large byte
// strings as capped slices of the data, and copies small ones.
func TestReaderShare(t *testing.T) {
	inData := func(b, data []byte) bool {
		for i := range data {
			if len(b) > 0 && &data[i] == &b[0] {
				return true
			}
		}
		return false
	}
	big := bytes.Repeat([]byte{7}, MinShared)
	cases := []struct {
		name   string
		value  any
		share  bool
		shared bool
	}{
		{"large, shared", big, true, true},
		{"large, without Share", big, false, false},
		{"under MinShared", big[:MinShared-1], true, false},
		{"under an eighth of the data", []any{big, bytes.Repeat([]byte{1}, 8*MinShared)}, true, false},
		{"empty", []byte{}, true, false},
	}
	for _, c := range cases {
		data := enc(c.value)
		r := NewReader(data)
		if c.share {
			r.Share()
		}
		var b []byte
		if _, ok := c.value.([]any); ok {
			r.ArrayHead()
			b = r.Bytes()
			r.Bytes()
			r.End()
		} else {
			b = r.Bytes()
		}
		if !r.Done() {
			t.Fatalf("%s: read failed", c.name)
		}
		if got := inData(b, data); got != c.shared {
			t.Errorf("%s: slice of the data = %v, want %v", c.name, got, c.shared)
		}
		if cap(b) != len(b) && c.shared {
			t.Errorf("%s: cap %d, len %d: a shared slice must be capped", c.name, cap(b), len(b))
		}
		if b == nil {
			t.Errorf("%s: nil", c.name)
		}
	}
	// Reset clears Share, and reuses the Reader for new data.
	r := NewReader(enc(big))
	r.Share()
	data := enc(big)
	r.Reset(data)
	if b := r.Bytes(); !r.Done() || inData(b, data) {
		t.Errorf("after Reset: done %v, shared %v; want a copy", r.Done(), inData(b, data))
	}
}

// TestFloat16 checks every half float, as Float32 and Float64, against
// the library, which converts them with github.com/x448/float16.
func TestFloat16(t *testing.T) {
	for h := range 1 << 16 {
		data := []byte{cF16, byte(h >> 8), byte(h)}
		var w32 float32
		var w64 float64
		if err := dm.Unmarshal(data, &w32); err != nil {
			t.Fatal(err)
		}
		if err := dm.Unmarshal(data, &w64); err != nil {
			t.Fatal(err)
		}
		g32, ok1 := read(data, rFloat32)
		g64, ok2 := read(data, rFloat64)
		if !ok1 || !ok2 || math.Float32bits(g32) != math.Float32bits(w32) || math.Float64bits(g64) != math.Float64bits(w64) {
			t.Fatalf("%x: got %v %v (%v %v), want %v %v", data, g32, g64, ok1, ok2, w32, w64)
		}
		if f := Float16(uint16(h)); math.Float32bits(f) != math.Float32bits(w32) {
			t.Fatalf("Float16(%#04x) = %v, want %v", h, f, w32)
		}
	}
}

func TestReaderFloatEdges(t *testing.T) {
	// A double beyond float32 overflows for the library: refuse it.
	refuses(t, AppendFloat64(nil, 1e39), rFloat32, false)
	refuses(t, AppendFloat64(nil, -math.MaxFloat64), rFloat32, false)
	// Doubles within range round to float32, as the library does.
	accepts(t, AppendFloat64(nil, 0.1), rFloat32)
	accepts(t, AppendFloat64(nil, 1e-50), rFloat32)
	accepts(t, AppendFloat64(nil, math.MaxFloat32), rFloat32)
	// Half and single floats the library never writes for these values.
	accepts(t, unhex("f9 3e00"), rFloat64)
	accepts(t, unhex("fa 3fc00000"), rFloat64)
	accepts(t, unhex("f9 7e01"), rFloat32)
	accepts(t, unhex("fa 7f800001"), rFloat32) // signalling NaN
	// The library stores integers into floats; the Reader refuses them.
	refuses(t, enc(1), rFloat64, true)
	refuses(t, enc(-1), rFloat32, true)
	// Simple values 24-31 in a two-byte form are not well-formed.
	refuses(t, unhex("f8 10"), rFloat64, false)
	refuses(t, unhex("f9 3e"), rFloat64, false)
	refuses(t, unhex("fa 3fc000"), rFloat32, false)
	refuses(t, unhex("fb 3ff00000000000"), rFloat64, false)
}

func TestReaderTime(t *testing.T) {
	for _, s := range []string{
		"2024-02-29T12:30:45Z",
		"2024-02-29T12:30:45.5Z",
		"2024-02-29T12:30:45.1234567891234Z", // more than 9 digits: truncated by time.Parse
		"2024-02-29T12:30:45+00:00",          // time.Local if Local is UTC
		"2024-02-29T12:30:45-00:00",
		"2024-02-29T12:30:45+05:30",
		"2024-02-29T12:30:45.000-23:59",
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999Z",
		"2024-02-29T12:30:45,5Z",    // comma fraction: time.Parse takes it
		"2024-02-29T12:30:45+24:00", // the library decodes what it refuses to encode
		"2024-02-29T12:30:45+23:60",
		"2024-02-29T1:30:45Z",
	} {
		accepts(t, enc(s), rTime)
	}
	for _, s := range []string{
		"2023-02-29T12:30:45Z", // no such day
		"2024-02-29T24:00:00Z",
		"2024-02-29T12:30:45+99:00",
		"2024-02-29T12:30:60Z",
		"2024-02-29T12:30:45+0100",
		"2024-02-29t12:30:45Z",
		"2024-02-29 12:30:45Z",
		"2024-02-29T12:30:45",
		"",
	} {
		refuses(t, enc(s), rTime, false)
	}
	refuses(t, enc("2024-02-29T12:30:45Z\xff"), rTime, false)
	// Null is the zero time; numbers and tags are left to the library.
	accepts(t, enc(nil), rTime)
	refuses(t, enc(1700000000), rTime, true)
	refuses(t, enc(1700000000.5), rTime, true)
	refuses(t, append([]byte{0xc0}, enc("2024-02-29T12:30:45Z")...), rTime, true)
	refuses(t, enc([]byte("2024-02-29T12:30:45Z")), rTime, false)
	// AppendTime round-trips through the Reader to what the library decodes.
	for _, v := range edgeTimes() {
		got, ok := read(must(t)(AppendTime(nil, v)), rTime)
		if !ok || !got.Equal(v) {
			t.Errorf("%v read back as %v (%v)", v, got, ok)
		}
	}
}

func TestReaderNonCanonical(t *testing.T) {
	// Longer heads than needed: the library decodes the same value, so the
	// Reader takes them too.
	for _, h := range []string{"18 05", "19 0005", "1a 00000005", "1b 0000000000000005"} {
		accepts(t, unhex(h), rInt64)
		accepts(t, unhex(h), rUint8)
	}
	accepts(t, unhex("39 0000"), rInt8)
	accepts(t, unhex("78 01 61"), rString)
	accepts(t, unhex("59 0001 61"), rBytes)
	accepts(t, unhex("98 02 01 02"), rInts)
	// But Key matches bytes, so a key with a long head is left to the library.
	refuses(t, unhex("a1 78 01 61 01"), rStructA, true)
	accepts(t, unhex("a1 61 61 01"), rStructA)
	// Indefinite lengths are forbidden by the options.
	refuses(t, unhex("9f 01 ff"), rInts, false)
	refuses(t, unhex("7f 61 61 ff"), rString, false)
	refuses(t, unhex("5f 41 61 ff"), rBytes, false)
	refuses(t, unhex("bf 61 61 01 ff"), rStructA, false)
	// Reserved additional information.
	refuses(t, unhex("1c"), rInt64, false)
	refuses(t, unhex("7c"), rString, false)
	// Tags: the library looks through them; the Reader refuses.
	refuses(t, unhex("c1 01"), rInt64, true)
	refuses(t, unhex("d9d9f7 01"), rInt64, true)
	refuses(t, unhex("c2 41 01"), rInt64, true)
	// Wrong types.
	refuses(t, enc("1"), rInt64, false)
	refuses(t, enc(1), rString, false)
	refuses(t, enc([]byte("a")), rString, false)
	refuses(t, enc("a"), rBytes, false)
	refuses(t, enc(1), rBool, false)
	refuses(t, enc(map[string]int{}), rInts, false)
	refuses(t, enc([]int{}), rMap, false)
	// Null and undefined into scalars leave the zero value in the library.
	refuses(t, enc(nil), rInt64, true)
	refuses(t, enc(nil), rString, true)
	refuses(t, enc(nil), rBool, true)
	refuses(t, unhex("f7"), rBytes, true)
	refuses(t, unhex("f7"), rInts, true)
	// Invalid UTF-8, in a string and in a map key.
	refuses(t, unhex("62 c3 28"), rString, false)
	refuses(t, unhex("a1 61 ff 80"), rMap, false)
	// Extra bytes after the item.
	refuses(t, append(enc(1), 0), rInt64, false)
	refuses(t, append(enc([]int64{1}), 0), rInts, false)
}

func rInts(r *Reader) []int64 { return ReadSlice(r, rInt64) }
func rStrings(r *Reader) []string {
	return ReadSlice(r, rString)
}
func rMap(r *Reader) map[string][]int64 { return ReadMap(r, rString, rInts) }

type structA struct {
	A int64 `cbor:"a"`
}

func rStructA(r *Reader) structA {
	var s structA
	if r.MapHead() != 1 {
		r.Fail()
		return s
	}
	r.Key("\x61a")
	s.A = r.Int(64)
	r.End()
	return s
}

func TestReaderContainers(t *testing.T) {
	for _, v := range [][]int64{nil, {}, edgeInts} {
		accepts(t, enc(v), rInts)
	}
	for _, v := range [][]string{nil, {}, edgeStrings[:9]} {
		accepts(t, enc(v), rStrings)
	}
	long := make([]string, 70000)
	for i := range long {
		long[i] = strings.Repeat("s", i%30)
	}
	accepts(t, enc(long), rStrings)
	for _, v := range []map[string][]int64{nil, {}, {"": nil, "a": {}, "bb": {1, -1}, strings.Repeat("k", 30): edgeInts}} {
		accepts(t, enc(v), rMap)
	}
	// Any order of entries decodes to the same map.
	accepts(t, unhex("a2 62 6262 80 61 61 f6"), rMap)
	im := map[int64]map[string]bool{-5: {"x": true}, 0: nil, 300: {}}
	accepts(t, enc(im), func(r *Reader) map[int64]map[string]bool {
		return ReadMap(r, rInt64, func(r *Reader) map[string]bool { return ReadMap(r, rString, rBool) })
	})
	if m, ok := read(enc(map[string][]int64{}), rMap); !ok || m == nil {
		t.Errorf("empty map: %#v, %v; want non-nil", m, ok)
	}
	if s, ok := read(enc([]int64{}), rInts); !ok || s == nil {
		t.Errorf("empty array: %#v, %v; want non-nil", s, ok)
	}
}

func TestReaderDuplicateKeys(t *testing.T) {
	refuses(t, unhex("a2 61 61 80 61 61 80"), rMap, false)
	// The same key in a longer head is still a duplicate.
	refuses(t, unhex("a2 61 61 80 78 01 61 80"), rMap, false)
	refuses(t, unhex("a2 01 f5 18 01 f4"), func(r *Reader) map[int64]bool {
		return ReadMap(r, rInt64, rBool)
	}, false)
	// -0.0 and 0.0 are the same Go map key.
	refuses(t, unhex("a2 f9 0000 01 f9 8000 02"), func(r *Reader) map[float64]int64 {
		return ReadMap(r, rFloat64, rInt64)
	}, false)
	accepts(t, unhex("a2 f9 0000 01 f9 3c00 02"), func(r *Reader) map[float64]int64 {
		return ReadMap(r, rFloat64, rInt64)
	})
}

// nested returns n arrays nested in one another around an empty one.
func nested(n int) []byte {
	b := bytes.Repeat([]byte{0x81}, n-1)
	return append(b, 0x80)
}

// rNested reads what nested writes, returning the depth it found.
func rNested(r *Reader) int {
	n := r.ArrayHead()
	d := 1
	if n == 1 {
		d += rNested(r)
	}
	r.End()
	return d
}

func TestReaderDepth(t *testing.T) {
	var v any
	if err := dm.Unmarshal(nested(MaxDepth), &v); err != nil {
		t.Fatalf("library refuses %d levels: %v", MaxDepth, err)
	}
	if d, ok := read(nested(MaxDepth), rNested); !ok || d != MaxDepth {
		t.Errorf("%d levels: %d, %v", MaxDepth, d, ok)
	}
	if err := dm.Unmarshal(nested(MaxDepth+1), &v); err == nil {
		t.Fatalf("library accepts %d levels", MaxDepth+1)
	}
	if _, ok := read(nested(MaxDepth+1), rNested); ok {
		t.Errorf("%d levels accepted", MaxDepth+1)
	}
	// Maps count too.
	m := append(bytes.Repeat([]byte{0xa1, 0x61, 0x6b}, MaxDepth), 0xa0)
	if err := dm.Unmarshal(m, &v); err == nil {
		t.Fatal("library accepts deep maps")
	}
	var rm func(r *Reader) bool
	rm = func(r *Reader) bool {
		if r.MapHead() == 1 {
			r.Key("\x61k")
			rm(r)
		}
		r.End()
		return true
	}
	if _, ok := read(m, rm); ok {
		t.Errorf("%d levels of maps accepted", MaxDepth+1)
	}
}

func TestReaderCounts(t *testing.T) {
	// Counts beyond the limits, or beyond the bytes present, fail before
	// anything is allocated.
	for _, h := range []string{
		"9a 00100001", "9b ffffffffffffffff", "9a 00100000", "99 ffff",
		"ba 00100001", "bb ffffffffffffffff", "b9 0800 00",
		"5b ffffffffffffffff", "5a 7fffffff 00", "7b 8000000000000000", "79 ffff 61",
	} {
		data := unhex(h)
		for _, f := range []func(*Reader) bool{
			func(r *Reader) bool { return rInts(r) != nil },
			func(r *Reader) bool { return rMap(r) != nil },
			func(r *Reader) bool { return r.Bytes() != nil },
			func(r *Reader) bool { return r.String() != "" },
		} {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			if _, ok := read(data, f); ok {
				t.Errorf("%s accepted", h)
			}
			runtime.ReadMemStats(&m1)
			// The bound leaves room for what the runtime and other
			// goroutines allocate meanwhile (TotalAlloc is the
			// process's); what it guards against is an allocation of
			// the announced count, megabytes.
			if n := m1.TotalAlloc - m0.TotalAlloc; n > 64<<10 {
				t.Errorf("%s: %d bytes allocated", h, n)
			}
		}
		var v any
		if err := dm.Unmarshal(data, &v); err == nil {
			t.Errorf("%s: library accepts", h)
		}
	}
	// Exactly the limit, with the items present, passes.
	big := make([]int64, 1<<20)
	accepts(t, enc(big), rInts)
	refuses(t, enc(make([]int64, 1<<20+1)), rInts, false)
	bm := make(map[int64]bool, 1<<20+1)
	for i := range 1<<20 + 1 {
		bm[int64(i)] = true
	}
	refuses(t, enc(bm), func(r *Reader) map[int64]bool { return ReadMap(r, rInt64, rBool) }, false)
}

func TestReaderStructure(t *testing.T) {
	data := enc([]int64{1, 2, 3})
	// Reading fewer items than the head announces fails at End.
	r := NewReader(data)
	r.ArrayHead()
	r.Int(64)
	r.End()
	if !r.Failed() {
		t.Error("End after too few items")
	}
	// Reading more fails at once.
	data = enc([]any{[]int64{1}, 2})
	r = NewReader(data)
	r.ArrayHead()
	r.ArrayHead()
	r.Int(64)
	r.Int(64)
	if !r.Failed() {
		t.Error("item beyond an array's count")
	}
	// End without a head.
	r = NewReader(enc(1))
	r.Int(64)
	r.End()
	if !r.Failed() {
		t.Error("End without a head")
	}
	// Two top-level items are extraneous data for the library.
	data = append(enc(1), enc(2)...)
	r = NewReader(data)
	r.Int(64)
	r.Int(64)
	if r.Done() {
		t.Error("two top-level items accepted")
	}
	// An unclosed level is not Done.
	r = NewReader(enc([]int64{}))
	r.ArrayHead()
	if r.Done() {
		t.Error("Done without End")
	}
	// Null consumes nothing unless it sees null.
	r = NewReader(enc(5))
	if r.Null() || r.Int(64) != 5 || !r.Done() {
		t.Error("Null consumed a non-null item")
	}
	// Key checks every byte and that there is room for it.
	r = NewReader(unhex("a1 61 61 01"))
	r.MapHead()
	r.Key("\x61b")
	if !r.Failed() {
		t.Error("wrong key accepted")
	}
	r = NewReader(unhex("a1 61"))
	r.MapHead()
	r.Key("\x61a")
	if !r.Failed() {
		t.Error("truncated key accepted")
	}
	// Failed is sticky and yields zero values.
	r = NewReader(enc(map[string]any{"a": 1, "b": "x"}))
	r.Fail()
	if r.MapHead() != -1 || r.String() != "" || r.Int(64) != 0 || r.Null() || r.Bytes() != nil || !r.Time().IsZero() || r.Done() {
		t.Error("reads after Fail")
	}
	// Empty and nil input.
	for _, d := range [][]byte{nil, {}} {
		r = NewReader(d)
		if r.Null() || r.Int(64) != 0 || !r.Failed() {
			t.Error("empty input")
		}
	}
}

// TestReaderTruncated checks that no proper prefix of a valid encoding is
// accepted, and that none panics.
func TestReaderTruncated(t *testing.T) {
	rec := sampleRec()
	for _, c := range []struct {
		v any
		f func([]byte) bool
	}{
		{map[string][]int64{"a": {1, 300, -70000}, strings.Repeat("k", 30): {math.MinInt64}},
			func(d []byte) bool { _, ok := read(d, rMap); return ok }},
		{edgeStrings[:7], func(d []byte) bool { _, ok := read(d, rStrings); return ok }},
		{rec, func(d []byte) bool { _, ok := read(d, readRec); return ok }},
		{edgeBytes[5], func(d []byte) bool { _, ok := read(d, rBytes); return ok }},
		{1.5, func(d []byte) bool { _, ok := read(d, rFloat64); return ok }},
		{edgeTimes()[4], func(d []byte) bool { _, ok := read(d, rTime); return ok }},
	} {
		data := enc(c.v)
		if !c.f(data) {
			t.Errorf("%T: full encoding refused", c.v)
		}
		for i := range len(data) {
			if c.f(data[:i]) {
				t.Errorf("%T: prefix of %d bytes accepted", c.v, i)
			}
		}
	}
}

// rec is a struct as rpcgen would generate a codec for.
type rec struct {
	A int64             `cbor:"a"`
	B string            `cbor:"b"`
	C []byte            `cbor:"c"`
	D time.Time         `cbor:"d"`
	E float64           `cbor:"e"`
	F float32           `cbor:"f"`
	G uint16            `cbor:"g"`
	H bool              `cbor:"h"`
	M map[int64]string  `cbor:"m"`
	L []int8            `cbor:"a key longer than twenty-three bytes"`
	P map[string][]byte `cbor:"p"`
}

func sampleRec() rec {
	return rec{
		A: -12345, B: "héllo", C: []byte{1, 2, 3},
		D: time.Date(2024, 2, 29, 12, 30, 45, 6789, time.FixedZone("", -5*3600)),
		E: math.Pi, F: -2.5, G: 65535, H: true,
		M: map[int64]string{-1: "m", 0: "z", 1000: ""},
		L: []int8{-128, 127, 0}, P: map[string][]byte{"x": nil, "y": {}},
	}
}

// Field keys in the order the library writes them: sorted by encoded key,
// so the 36-byte key (head 78 24) comes after the one-letter ones.
const (
	keyA = "\x61a"
	keyL = "\x78\x24a key longer than twenty-three bytes"
)

func readRec(r *Reader) rec {
	var v rec
	if r.MapHead() != 11 {
		r.Fail()
		return v
	}
	r.Key(keyA)
	v.A = r.Int(64)
	r.Key("\x61b")
	v.B = r.String()
	r.Key("\x61c")
	v.C = r.Bytes()
	r.Key("\x61d")
	v.D = r.Time()
	r.Key("\x61e")
	v.E = r.Float64()
	r.Key("\x61f")
	v.F = r.Float32()
	r.Key("\x61g")
	v.G = uint16(r.Uint(16))
	r.Key("\x61h")
	v.H = r.Bool()
	r.Key("\x61m")
	v.M = ReadMap(r, rInt64, rString)
	r.Key("\x61p")
	v.P = ReadMap(r, rString, rBytes)
	r.Key(keyL)
	v.L = ReadSlice(r, rInt8)
	r.End()
	return v
}

func appendRec(b []byte, v rec) ([]byte, error) {
	b = AppendMapHead(b, 11)
	b = AppendInt(append(b, keyA...), v.A)
	b = AppendString(append(b, "\x61b"...), v.B)
	b = AppendBytes(append(b, "\x61c"...), v.C)
	b, err := AppendTime(append(b, "\x61d"...), v.D)
	if err != nil {
		return b, err
	}
	b = AppendFloat64(append(b, "\x61e"...), v.E)
	b = AppendFloat32(append(b, "\x61f"...), v.F)
	b = AppendUint(append(b, "\x61g"...), uint64(v.G))
	b = AppendBool(append(b, "\x61h"...), v.H)
	if b, err = AppendMap(append(b, "\x61m"...), v.M, AppendInt, ok(AppendString)); err != nil {
		return b, err
	}
	if b, err = AppendMap(append(b, "\x61p"...), v.P, AppendString, ok(AppendBytes)); err != nil {
		return b, err
	}
	return AppendSlice(append(b, keyL...), v.L, func(b []byte, e int8) ([]byte, error) { return AppendInt(b, int64(e)), nil })
}

func TestRecord(t *testing.T) {
	v := sampleRec()
	data := must(t)(appendRec(nil, v))
	same(t, data, v)
	accepts(t, data, readRec)
	var zero rec
	same(t, must(t)(appendRec(nil, zero)), zero)
	accepts(t, must(t)(appendRec(nil, zero)), readRec)
	// A record with a time the library refuses fails the same way.
	v.D = invalidTimes()[0]
	if _, err := em.Marshal(v); err == nil {
		t.Errorf("library encodes %v", v.D)
	}
	if _, err := appendRec(nil, v); err == nil {
		t.Errorf("appendRec with %v: no error", v.D)
	}
	// Reordered fields and a missing field are left to the library.
	swapped := unhex("a2 61 62 61 78 61 61 01")
	refuses(t, swapped, readRec, true)
}

func TestReaderAllocs(t *testing.T) {
	data := must(t)(appendRec(nil, sampleRec()))
	ints := enc([]int64{1, 2, 3, 4})
	tm := enc(time.Date(2024, 2, 29, 12, 30, 45, 6789, time.UTC))
	i, f, bl := enc(int64(-5)), enc(1.5), enc(true)
	// read's Reader escapes to the heap through the func value f: one
	// allocation in each case besides the values returned.
	for _, c := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"[]int64", 2, func() { read(ints, rInts) }},
		// A UTC time needs no allocation of its own.
		{"time", 1, func() { read(tm, rTime) }},
		{"scalars", 3, func() {
			read(i, rInt64)
			read(f, rFloat64)
			read(bl, rBool)
		}},
		// The Reader, B, C, the maps M and P, L and the like; one-byte
		// strings and D's whole-hour zone come from Go's caches.
		{"record", 8, func() { read(data, readRec) }},
	} {
		if n := testing.AllocsPerRun(100, c.f); n > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, n, c.max)
		}
	}
}
