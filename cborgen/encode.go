package cborgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Major types, shifted into the initial byte.
const (
	majUint  = 0 << 5
	majNeg   = 1 << 5
	majBytes = 2 << 5
	majText  = 3 << 5
	majArray = 4 << 5
	majMap   = 5 << 5
	majTag   = 6 << 5
)

// Initial bytes of the simple values and floats.
const (
	cFalse = 0xf4
	cTrue  = 0xf5
	cNull  = 0xf6
	cF16   = 0xf9
	cF32   = 0xfa
	cF64   = 0xfb
)

// appendHead writes the shortest head of major type m with argument n.
func appendHead(b []byte, m byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// AppendNull appends null.
func AppendNull(b []byte) []byte { return append(b, cNull) }

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, cTrue)
	}
	return append(b, cFalse)
}

// AppendInt appends v as an unsigned (v >= 0) or negative integer.
func AppendInt(b []byte, v int64) []byte {
	if v < 0 {
		// -1-v cannot overflow, unlike -v for MinInt64.
		return appendHead(b, majNeg, uint64(-1-v))
	}
	return appendHead(b, majUint, uint64(v))
}

// AppendUint appends v as an unsigned integer.
func AppendUint(b []byte, v uint64) []byte { return appendHead(b, majUint, v) }

// The library's default NaNConvert7e00 and InfConvertFloat16 turn these into
// half floats whatever the width of the Go float.
func appendNonFinite(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, cF16, 0x7e, 0x00)
	case f > 0:
		return append(b, cF16, 0x7c, 0x00)
	}
	return append(b, cF16, 0xfc, 0x00)
}

// AppendFloat32 appends v as the library encodes a float32: NaN and
// infinities as half floats, anything else (-0 and subnormals included) as
// a single-precision float, never shortened.
func AppendFloat32(b []byte, v float32) []byte {
	if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
		return appendNonFinite(b, f)
	}
	return binary.BigEndian.AppendUint32(append(b, cF32), math.Float32bits(v))
}

// AppendFloat64 appends v as the library encodes a float64: NaN and
// infinities as half floats, anything else as a double, never shortened.
func AppendFloat64(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return appendNonFinite(b, v)
	}
	return binary.BigEndian.AppendUint64(append(b, cF64), math.Float64bits(v))
}

// AppendString appends s as a text string. Like the library, it does not
// check that s is valid UTF-8.
func AppendString(b []byte, s string) []byte {
	return append(appendHead(b, majText, uint64(len(s))), s...)
}

// AppendBytes appends v as a byte string, or null if v is nil.
func AppendBytes(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, cNull)
	}
	return append(appendHead(b, majBytes, uint64(len(v))), v...)
}

// AppendTime appends t as the library encodes a time.Time with
// TimeRFC3339Nano: null for the zero time, else t.Format(time.RFC3339Nano)
// (in t's own location, trailing zeros of the fraction dropped) as a text
// string. A time the library refuses to encode (a year outside 0-9999, or
// a UTC offset of 24 hours or more) is an error, and nothing is appended.
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return append(b, cNull), nil
	}
	// The text is 20 to 35 bytes for years 0-9999 (and well under 256 for
	// any year), so reserve a two-byte head and drop a byte if one suffices.
	start := len(b)
	b = append(b, majText|24, 0)
	i := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	if !rfc3339OK(b[i:]) {
		return b[:start], fmt.Errorf("cborgen: cannot encode time %v: RFC 3339 needs a year in 0-9999 and a UTC offset under 24 hours", t)
	}
	n := len(b) - i
	if n < 24 {
		b[i-2] = majText | byte(n)
		copy(b[i-1:], b[i:])
		return b[:len(b)-1], nil
	}
	b[i-1] = byte(n)
	return b, nil
}

// rfc3339OK mirrors the library's checkRFC3339Limits on formatted text.
func rfc3339OK(s []byte) bool {
	if len(s) < len("0000-00-00T00:00:00Z") || s[4] != '-' {
		return false
	}
	if s[len(s)-1] == 'Z' {
		return true
	}
	z := s[len(s)-len("+07:00"):]
	return (z[0] == '+' || z[0] == '-') && (z[1] < '2' || z[1] == '2' && z[2] < '4')
}

// AppendMapHead appends the head of a map of n pairs.
func AppendMapHead(b []byte, n int) []byte { return appendHead(b, majMap, uint64(n)) }

// AppendArrayHead appends the head of an array of n elements.
func AppendArrayHead(b []byte, n int) []byte { return appendHead(b, majArray, uint64(n)) }

// AppendTagHead appends the head of tag num, in its shortest form, as the
// library writes a cbor.Tag or a Marshaler's tag; the caller appends the
// tag's content, one item, after it.
func AppendTagHead(b []byte, num uint64) []byte { return appendHead(b, majTag, num) }

// AppendSlice appends s as an array of elem(b, e) for each element, or
// null if s is nil. An empty non-nil slice is an empty array. It stops at
// the first error of elem.
func AppendSlice[E any](b []byte, s []E, elem func([]byte, E) ([]byte, error)) ([]byte, error) {
	if s == nil {
		return append(b, cNull), nil
	}
	b = appendHead(b, majArray, uint64(len(s)))
	for _, e := range s {
		var err error
		if b, err = elem(b, e); err != nil {
			return b, err
		}
	}
	return b, nil
}

// pair locates one encoded entry of a map, relative to its first entry.
type pair struct{ key, val, end int }

// smallMap is the most entries AppendMap sorts without allocating.
const smallMap = 16

// AppendMap appends m as a map, or null if m is nil. It stops at the
// first error of val. As the library does
// with SortBytewiseLexical, it encodes every entry, then orders them by the
// bytes of their encoded keys, so that the order is the canonical one of
// RFC 8949 whatever the key type. Maps of more than 16 entries need one
// scratch allocation for the entries' positions; the reordering itself
// uses spare capacity of b.
func AppendMap[K comparable, V any](b []byte, m map[K]V, key func([]byte, K) []byte, val func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(b, cNull), nil
	}
	b = appendHead(b, majMap, uint64(len(m)))
	var err error
	if len(m) < 2 {
		for k, v := range m {
			b, err = val(key(b, k), v)
		}
		return b, err
	}
	var a [smallMap]pair
	ps := a[:0]
	if len(m) > smallMap {
		ps = make([]pair, 0, len(m))
	}
	start := len(b)
	for k, v := range m {
		p := pair{key: len(b) - start}
		b = key(b, k)
		p.val = len(b) - start
		if b, err = val(b, v); err != nil {
			return b, err
		}
		p.end = len(b) - start
		ps = append(ps, p)
	}
	body := b[start:]
	slices.SortFunc(ps, func(x, y pair) int {
		return bytes.Compare(body[x.key:x.val], body[y.key:y.val])
	})
	// Stage the sorted entries after the end of b, then copy them back.
	n := len(body)
	b = slices.Grow(b, n)
	tmp := b[len(b) : len(b)+n]
	body = b[start:]
	i := 0
	for _, p := range ps {
		i += copy(tmp[i:], body[p.key:p.end])
	}
	copy(body, tmp)
	return b, nil
}
