package cborgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// agree reads data with f and, if the Reader accepts it, checks that the
// library decodes data into the same type without error and to an equal
// value.
func agree[T any](t *testing.T, data []byte, f func(*Reader) T) {
	t.Helper()
	if v, ok := read(data, f); ok {
		check(t, data, v)
	}
}

func FuzzReader(f *testing.F) {
	for _, v := range []any{
		map[string][]int64{"a": {1, -1, 1 << 40}, "": nil, strings.Repeat("k", 24): {}},
		map[string][]int64{},
		[]string{"x", "", "héllo", strings.Repeat("s", 30)},
		[]string(nil),
		sampleRec(),
		rec{},
		time.Date(2024, 2, 29, 12, 30, 45, 6789, time.FixedZone("", 3600)),
		float32(1.5), 1e300, math.NaN(), int8(-5), uint16(300), []byte("abc"),
	} {
		f.Add(enc(v))
	}
	f.Add(must(f)(appendRec(nil, sampleRec())))
	f.Add(unhex("a2 61 61 80 61 61 80"))
	f.Add(unhex("f9 7e01"))
	f.Add(nested(MaxDepth + 1))
	f.Add(AppendString(AppendTagHead(nil, refTag), "ref"))
	f.Add(unhex("d9f270 d9f270 61 78"))
	f.Fuzz(func(t *testing.T, data []byte) {
		agree(t, data, rMap)
		agree(t, data, rStrings)
		agree(t, data, rInts)
		agree(t, data, readRec)
		agree(t, data, rTime)
		agree(t, data, rFloat32)
		agree(t, data, rFloat64)
		agree(t, data, rInt8)
		agree(t, data, rUint16)
		agree(t, data, rBytes)
		agree(t, data, rBool)
		agree(t, data, func(r *Reader) map[float64]int64 { return ReadMap(r, rFloat64, rInt64) })
		agree(t, data, func(r *Reader) [][]string { return ReadSlice(r, rStrings) })
		agree(t, data, rNestedAny)
		agree(t, data, rTagged(refTag))
		agree(t, data, func(r *Reader) []cbor.Tag { return ReadSlice(r, rTagged(refTag)) })
	})
}

// rNestedAny reads an arbitrarily nested []any of arrays and ints, for depth limits.
func rNestedAny(r *Reader) []any {
	if r.Null() {
		return nil
	}
	n := r.ArrayHead()
	if n < 0 {
		return nil
	}
	s := make([]any, n)
	for i := range s {
		if r.Failed() {
			return nil
		}
		if r.rest() > 0 && r.data[r.off]&0xe0 == majArray {
			s[i] = rNestedAny(r)
		} else {
			s[i] = r.Uint(64)
		}
	}
	r.End()
	return s
}

func FuzzAppend(f *testing.F) {
	f.Add(int64(-1), uint64(24), math.Float64bits(1.5), math.Float32bits(-0.5), "héllo", []byte{1}, "a", strings.Repeat("b", 24), "", int64(7), int64(1700000000), int64(5), int32(3600))
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), uint64(0x7ff0000000000001), uint32(0x7f800001), "\xff", []byte(nil), "k", "k", "kk", int64(-300), int64(-62167219200), int64(0), int32(-86399))
	f.Add(int64(1<<32), uint64(65536), uint64(1), uint32(1), strings.Repeat("z", 300), []byte{}, "", "x", strings.Repeat("y", 256), int64(0), int64(253402300800), int64(999999999), int32(86400))
	f.Fuzz(func(t *testing.T, i int64, u uint64, f64 uint64, f32 uint32, s string, bs []byte, k1, k2, k3 string, v int64, sec, nsec int64, off int32) {
		same(t, AppendInt(nil, i), i)
		same(t, AppendUint(nil, u), u)
		same(t, AppendFloat64(nil, math.Float64frombits(f64)), math.Float64frombits(f64))
		same(t, AppendFloat32(nil, math.Float32frombits(f32)), math.Float32frombits(f32))
		same(t, AppendString(nil, s), s)
		same(t, AppendBytes(nil, bs), bs)
		if len(bs) == 0 {
			same(t, AppendBytes(nil, nil), []byte(nil))
		}
		ss := []string{s, k1, k2, k3}
		same(t, must(t)(AppendSlice(nil, ss, ok(AppendString))), ss)
		sm := map[string]int64{k1: v, k2: i, k3: -v, s: int64(u >> 1)}
		same(t, must(t)(AppendMap(nil, sm, AppendString, ok(AppendInt))), sm)
		im := map[int64]string{i: s, v: k1, -v: k2, int64(off): k3, int64(u): "", sec: "s", nsec: "n"}
		same(t, must(t)(AppendMap(nil, im, AppendInt, ok(AppendString))), im)
		bm := map[string][]byte{k1: bs, k2: nil, s: []byte(k3)}
		same(t, must(t)(AppendMap(nil, bm, AppendString, ok(AppendBytes))), bm)

		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(off)))
		want, err := em.Marshal(tm)
		got, aerr := AppendTime([]byte("pre"), tm)
		if (aerr == nil) != (err == nil) {
			t.Fatalf("%v: AppendTime error %v, library error %v", tm, aerr, err)
		}
		if err != nil {
			if string(got) != "pre" {
				t.Fatalf("%v: AppendTime on an error left %q, want %q", tm, got, "pre")
			}
		} else {
			if !bytes.Equal(got, append([]byte("pre"), want...)) {
				t.Fatalf("%v:\n got %x\nwant pre+%x", tm, got, want)
			}
			// The Reader reads it back as the library does.
			agree(t, want, rTime)
			if _, ok := read(want, rTime); !ok {
				t.Fatalf("%v: Reader refuses %x", tm, want)
			}
		}
		// In containers, an error of AppendTime is one of AppendSlice and
		// AppendMap, exactly when the library fails too.
		ts := []time.Time{{}, tm, time.Unix(sec, 0).UTC()}
		tmm := map[string]time.Time{k1: tm, k2: {}, k3: time.Unix(0, nsec)}
		for _, c := range []struct {
			v      any
			append func() ([]byte, error)
		}{
			{ts, func() ([]byte, error) { return AppendSlice(nil, ts, AppendTime) }},
			{tmm, func() ([]byte, error) { return AppendMap(nil, tmm, AppendString, AppendTime) }},
		} {
			want, err := em.Marshal(c.v)
			got, aerr := c.append()
			if (aerr == nil) != (err == nil) {
				t.Fatalf("%v: append error %v, library error %v", c.v, aerr, err)
			}
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("%v:\n got %x\nwant %x", c.v, got, want)
			}
		}

		// Whatever was appended reads back as the library decodes it.
		data := must(t)(AppendMap(nil, sm, AppendString, ok(AppendInt)))
		if _, ok := read(data, func(r *Reader) map[string]int64 { return ReadMap(r, rString, rInt64) }); !ok && utf8ok(sm) {
			t.Fatalf("%x: Reader refuses", data)
		}
		agree(t, data, func(r *Reader) map[string]int64 { return ReadMap(r, rString, rInt64) })
		data = AppendFloat32(nil, math.Float32frombits(f32))
		if _, ok := read(data, rFloat32); !ok {
			t.Fatalf("%x: Reader refuses", data)
		}
		agree(t, data, rFloat32)
		data = AppendFloat64(nil, math.Float64frombits(f64))
		if _, ok := read(data, rFloat64); !ok {
			t.Fatalf("%x: Reader refuses", data)
		}
		agree(t, data, rFloat64)
	})
}

func utf8ok(m map[string]int64) bool {
	for k := range m {
		if !utf8.ValidString(k) {
			return false
		}
	}
	return true
}
