package cborgen

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of maps and arrays a Reader accepts, as
// the library's MaxNestedLevels: a top-level map is at depth 1.
const MaxDepth = 32

// maxCount is the library's MaxArrayElements and MaxMapPairs.
const maxCount = 1 << 20

// A Reader parses one CBOR data item from a byte slice, as generated code
// directs it. It tracks how many items each open map or array still holds,
// so that a value read with Done reporting true is exactly one well-formed
// item. Once failed it stays failed and every method returns zero values.
//
// Methods allocate only the values they return. A Reader passed to a
// function value (as ReadSlice and ReadMap do) escapes to the heap, one
// allocation per NewReader: generated code reads slices and maps in loops
// of its own, which keep its Reader on the stack.
type Reader struct {
	data   []byte
	off    int
	depth  int                  // open levels
	left   [MaxDepth + 1]uint32 // items still expected at each level; [0] is the top
	failed bool
	shared bool // Bytes may return slices of data (Share)
}

// NewReader returns a Reader of data, expecting one item.
func NewReader(data []byte) Reader {
	r := Reader{data: data}
	r.left[0] = 1
	return r
}

// Reset makes r a Reader of data, expecting one item, as NewReader does.
// It lets a caller reuse one Reader (from a pool, say) for many values.
func (r *Reader) Reset(data []byte) {
	*r = Reader{data: data}
	r.left[0] = 1
}

// Share lets Bytes return large byte strings as slices of the data being
// read, without a copy. Call it only when data is the caller's to give
// away: nothing may write to it or reuse it afterwards, since the decoded
// value refers to it and keeps all of it alive. A byte string is shared
// when it is at least MinShared bytes and at least an eighth of data, so
// that a shared slice keeps at most eight times its own size alive;
// smaller ones are copied as without Share. Shared slices are capped at
// their length, so that an append to one copies.
func (r *Reader) Share() { r.shared = true }

// MinShared is the smallest byte string that Bytes returns without a copy
// once Share is called.
const MinShared = 1 << 10

// Fail marks the read failed; the caller then falls back to the library.
func (r *Reader) Fail() { r.failed = true }

// Failed reports whether the read failed.
func (r *Reader) Failed() bool { return r.failed }

// Done reports whether the read succeeded: not failed, every byte consumed,
// the one top-level item read and every MapHead and ArrayHead closed by End.
func (r *Reader) Done() bool {
	return !r.failed && r.off == len(r.data) && r.depth == 0 && r.left[0] == 0
}

// item accounts for one item about to be read at the current level and
// reports whether reading may go on.
func (r *Reader) item() bool {
	if r.failed {
		return false
	}
	if r.left[r.depth] == 0 {
		r.failed = true
		return false
	}
	r.left[r.depth]--
	return true
}

// rest is the number of bytes not yet consumed.
func (r *Reader) rest() int { return len(r.data) - r.off }

// next reads the head of the next item, which must be an integer, a
// string, an array or a map, and returns its major type and argument.
// Heads longer than needed are accepted, as the library accepts them;
// indefinite lengths and reserved values fail.
func (r *Reader) next() (byte, uint64, bool) {
	if !r.item() {
		return 0, 0, false
	}
	m, n, ok := r.rawHead()
	if ok && m == majTag {
		// Tags have their own reader (Tag).
		r.failed = true
		return 0, 0, false
	}
	return m, n, ok
}

// rawHead reads the head of major type 0 to 6 at the current offset,
// without accounting for an item, and returns its major type and
// argument. Simple values and floats (major type 7) have their own
// readers and fail here.
func (r *Reader) rawHead() (byte, uint64, bool) {
	if r.failed || r.off >= len(r.data) {
		r.failed = true
		return 0, 0, false
	}
	m, ai := r.data[r.off]&0xe0, r.data[r.off]&0x1f
	var n int
	switch {
	case m > majTag:
		r.failed = true
		return 0, 0, false
	case ai < 24:
		r.off++
		return m, uint64(ai), true
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	default:
		r.failed = true
		return 0, 0, false
	}
	if r.rest() < 1+n {
		r.failed = true
		return 0, 0, false
	}
	p := r.data[r.off+1 : r.off+1+n]
	r.off += 1 + n
	switch n {
	case 1:
		return m, uint64(p[0]), true
	case 2:
		return m, uint64(binary.BigEndian.Uint16(p)), true
	case 4:
		return m, uint64(binary.BigEndian.Uint32(p)), true
	}
	return m, binary.BigEndian.Uint64(p), true
}

// head reads the head of an item of major type m and returns its argument.
func (r *Reader) head(m byte) (uint64, bool) {
	got, n, ok := r.next()
	if ok && got != m {
		r.failed = true
		return 0, false
	}
	return n, ok
}

// payload reads the head of a string of major type m and returns its
// content, checked against the bytes present.
func (r *Reader) payload(m byte) ([]byte, bool) {
	n, ok := r.head(m)
	if !ok {
		return nil, false
	}
	if n > uint64(r.rest()) {
		r.failed = true
		return nil, false
	}
	p := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return p, true
}

// Null reports whether the next item is null, consuming it if so. It
// consumes nothing otherwise.
func (r *Reader) Null() bool {
	if r.failed || r.off >= len(r.data) || r.data[r.off] != cNull || r.left[r.depth] == 0 {
		return false
	}
	r.left[r.depth]--
	r.off++
	return true
}

// open reads a map or array head of n items each per count and opens a level.
func (r *Reader) open(m byte, per uint64) int {
	n, ok := r.head(m)
	if !ok {
		return -1
	}
	// Every item takes at least one byte.
	if n > maxCount || n*per > uint64(r.rest()) || r.depth >= MaxDepth {
		r.failed = true
		return -1
	}
	r.depth++
	r.left[r.depth] = uint32(n * per)
	return int(n)
}

// Tag reads the head of tag num; the tag's content is the item read
// next, with the Reader's other methods. It fails unless the next item
// is tag num (a head longer than needed is accepted, as the library
// accepts it) and its content is not itself a tag: the library counts a
// tag directly inside a tag as a level of nesting, which the Reader does
// not track. Like the library, it opens no level for the tag itself.
//
// Tag is for the numbers the library gives no meaning of its own: it
// fails for 0 to 3 (times and bignums), 21 to 23 (expected encodings) and
// 55799 (self-described CBOR), whose content the library checks or
// converts. A number of the first-come range (32768 and up) that an
// application defines, such as core's tag for a ref, is what it is for.
func (r *Reader) Tag(num uint64) {
	if r.failed {
		return
	}
	switch num {
	case 0, 1, 2, 3, 21, 22, 23, 55799:
		r.failed = true
		return
	}
	if r.left[r.depth] == 0 {
		// The tag and its content are one item, and none is expected.
		r.failed = true
		return
	}
	m, n, ok := r.rawHead()
	if !ok || m != majTag || n != num {
		r.failed = true
		return
	}
	if r.off < len(r.data) && r.data[r.off]&0xe0 == majTag {
		r.failed = true
	}
}

// MapHead reads a definite-length map head and returns its pair count, or
// -1 after failing. It fails when the count exceeds 1<<20 (the library's
// MaxMapPairs), cannot fit in the bytes left, or the map would be nested
// deeper than MaxDepth. It opens a level that End closes after all keys and
// values are read.
func (r *Reader) MapHead() int { return r.open(majMap, 2) }

// ArrayHead reads a definite-length array head and returns its element
// count, or -1 after failing, with the limits of MapHead (1<<20 is the
// library's MaxArrayElements).
func (r *Reader) ArrayHead() int { return r.open(majArray, 1) }

// End closes the level opened by the last unclosed MapHead or ArrayHead. It
// fails unless exactly the announced number of items were read.
func (r *Reader) End() {
	if r.failed {
		return
	}
	if r.depth == 0 || r.left[r.depth] != 0 {
		r.failed = true
		return
	}
	r.depth--
}

// Key consumes the next bytes if they are exactly enc, an encoded key with
// its head, and fails otherwise. Generated code reads a struct's fields in
// the order their keys are encoded, so any other order, an unknown key or a
// key written with a longer head than needed falls back to the library.
func (r *Reader) Key(enc string) {
	if !r.item() {
		return
	}
	if len(enc) == 0 || r.rest() < len(enc) || string(r.data[r.off:r.off+len(enc)]) != enc {
		r.failed = true
		return
	}
	r.off += len(enc)
}

// Bool reads true or false.
func (r *Reader) Bool() bool {
	if !r.item() {
		return false
	}
	if r.off < len(r.data) {
		switch r.data[r.off] {
		case cFalse:
			r.off++
			return false
		case cTrue:
			r.off++
			return true
		}
	}
	r.failed = true
	return false
}

// Int reads an integer (major type 0 or 1) that fits a signed integer of
// the given bits (8, 16, 32 or 64; 0 for int's size); anything else
// fails, as the library reports an overflow for it.
func (r *Reader) Int(bits int) int64 {
	if bits == 0 {
		bits = strconv.IntSize
	}
	if bits != 8 && bits != 16 && bits != 32 && bits != 64 {
		r.failed = true
		return 0
	}
	m, n, ok := r.next()
	if !ok || m != majUint && m != majNeg {
		r.failed = true
		return 0
	}
	// n <= max means the value fits both ways: max for major 0 and -1-max
	// = min for major 1.
	if n > uint64(1)<<(bits-1)-1 {
		r.failed = true
		return 0
	}
	if m == majNeg {
		return -1 - int64(n)
	}
	return int64(n)
}

// Uint reads an unsigned integer (major type 0) that fits an unsigned
// integer of the given bits (8, 16, 32 or 64; 0 for uint's size).
func (r *Reader) Uint(bits int) uint64 {
	if bits == 0 {
		bits = strconv.IntSize
	}
	if bits != 8 && bits != 16 && bits != 32 && bits != 64 {
		r.failed = true
		return 0
	}
	n, ok := r.head(majUint)
	if !ok {
		return 0
	}
	if bits < 64 && n>>bits != 0 {
		r.failed = true
		return 0
	}
	return n
}

// float reads a half, single or double float as the library widens it to
// float64 (a half goes through float32). Integers, which the library also
// stores into floats, fail.
func (r *Reader) float() (float64, bool) {
	if !r.item() {
		return 0, false
	}
	if r.off >= len(r.data) {
		r.failed = true
		return 0, false
	}
	var n int
	switch r.data[r.off] {
	case cF16:
		n = 2
	case cF32:
		n = 4
	case cF64:
		n = 8
	default:
		r.failed = true
		return 0, false
	}
	if r.rest() < 1+n {
		r.failed = true
		return 0, false
	}
	p := r.data[r.off+1 : r.off+1+n]
	r.off += 1 + n
	switch n {
	case 2:
		return float64(math.Float32frombits(f16to32(binary.BigEndian.Uint16(p)))), true
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(p))), true
	}
	return math.Float64frombits(binary.BigEndian.Uint64(p)), true
}

// Float16 returns the value of half-precision float bits (a CBOR item of
// additional information 25) as a float32, exactly as the library widens
// them.
func Float16(bits uint16) float32 { return math.Float32frombits(f16to32(bits)) }

// f16to32 converts half-float bits to float32 bits exactly as
// github.com/x448/float16, which the library uses: NaNs keep their payload
// and get the quiet bit.
func f16to32(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h&0x7c00) >> 10
	coef := uint32(h&0x03ff) << 13
	switch {
	case exp == 0x1f && coef == 0:
		return sign | 0x7f800000
	case exp == 0x1f:
		return sign | 0x7fc00000 | coef
	case exp == 0 && coef == 0:
		return sign
	case exp == 0:
		// Normalize a subnormal.
		exp++
		for coef&0x7f800000 == 0 {
			coef <<= 1
			exp--
		}
		coef &= 0x007fffff
	}
	return sign | (exp+0x7f-0xf)<<23 | coef
}

// Float32 reads a half, single or double float into a float32 as the
// library does: a finite double beyond the float32 range fails (the
// library reports an overflow), any other is rounded to float32.
func (r *Reader) Float32() float32 {
	f, ok := r.float()
	if !ok {
		return 0
	}
	if a := math.Abs(f); a > math.MaxFloat32 && a <= math.MaxFloat64 {
		r.failed = true
		return 0
	}
	return float32(f)
}

// Float64 reads a half, single or double float.
func (r *Reader) Float64() float64 {
	f, _ := r.float()
	return f
}

// String reads a text string, which must be valid UTF-8 (the library
// rejects invalid text strings). It makes *Reader a fmt.Stringer by
// accident: printing a *Reader consumes an item.
func (r *Reader) String() string {
	p, ok := r.payload(majText)
	if !ok {
		return ""
	}
	if !utf8.Valid(p) {
		r.failed = true
		return ""
	}
	return string(p)
}

// Bytes reads null as nil, or a byte string as a fresh copy (non-nil even
// when empty), as the library decodes into a []byte; after Share, a large
// byte string is a slice of the data instead.
func (r *Reader) Bytes() []byte {
	if r.Null() {
		return nil
	}
	p, ok := r.payload(majBytes)
	if !ok {
		return nil
	}
	if r.shared && len(p) >= MinShared && 8*len(p) >= len(r.data) {
		return p[:len(p):len(p)]
	}
	return append(make([]byte, 0, len(p)), p...)
}

// Time reads null as the zero time, or a text string in RFC 3339 as the
// library does with time.Parse(time.RFC3339, s): fractional seconds of any
// length are accepted, "Z" gives UTC, and an offset gives time.Local when
// Local has that offset at that instant, else a fixed zone with no name.
// Numeric (Unix) times and tags, which the library also accepts, fail.
func (r *Reader) Time() time.Time {
	if r.Null() {
		return time.Time{}
	}
	p, ok := r.payload(majText)
	if !ok {
		return time.Time{}
	}
	var t time.Time
	// UnmarshalText is time.Parse(time.RFC3339, s) without converting p to
	// a string; should Go make it stricter (go.dev/issue/54580), it only
	// fails more often, which is safe.
	if !utf8.Valid(p) || t.UnmarshalText(p) != nil {
		r.failed = true
		return time.Time{}
	}
	return t
}

// ReadSlice reads null as nil, or an array with read for each element. An
// empty array gives an empty non-nil slice, as the library decodes it.
func ReadSlice[E any](r *Reader, read func(*Reader) E) []E {
	if r.Null() {
		return nil
	}
	n := r.ArrayHead()
	if n < 0 {
		return nil
	}
	// n is at most the bytes left, so the allocation is bounded by the input.
	s := make([]E, n)
	for i := range s {
		s[i] = read(r)
		if r.failed {
			return nil
		}
	}
	r.End()
	if r.failed {
		return nil
	}
	return s
}

// ReadMap reads null as nil, or a map with key and val for each entry, in
// any order. A duplicate key fails, as the library's DupMapKeyEnforcedAPF
// rejects it.
func ReadMap[K comparable, V any](r *Reader, key func(*Reader) K, val func(*Reader) V) map[K]V {
	if r.Null() {
		return nil
	}
	n := r.MapHead()
	if n < 0 {
		return nil
	}
	m := make(map[K]V, n)
	for range n {
		k := key(r)
		v := val(r)
		if r.failed {
			return nil
		}
		if _, dup := m[k]; dup {
			r.failed = true
			return nil
		}
		m[k] = v
	}
	r.End()
	if r.failed {
		return nil
	}
	return m
}
