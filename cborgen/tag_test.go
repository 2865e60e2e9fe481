package cborgen

import (
	"math"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// refTag is core's tag for a ref (62064), the tag generated code reads.
const refTag = 62064

func TestAppendTagHead(t *testing.T) {
	for _, num := range []uint64{6, 23, 24, 255, 256, refTag, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		// The library writes a cbor.Tag as its head, then its content.
		same(t, AppendString(AppendTagHead(nil, num), "x"), cbor.Tag{Number: num, Content: "x"})
		same(t, AppendArrayHead(AppendTagHead(nil, num), 0), cbor.Tag{Number: num, Content: []string{}})
	}
	if got := AppendTagHead([]byte("ab"), refTag); string(got) != "ab\xd9\xf2\x70" {
		t.Errorf("AppendTagHead onto a prefix: %x", got)
	}
	if n := testing.AllocsPerRun(100, func() { AppendTagHead(make([]byte, 0, 8)[:0], refTag) }); n > 1 {
		t.Errorf("AppendTagHead: %v allocations", n)
	}
}

// rTagged reads tag num around a text string, as a cbor.Tag: the value
// the library decodes the same bytes into.
func rTagged(num uint64) func(*Reader) cbor.Tag {
	return func(r *Reader) cbor.Tag {
		r.Tag(num)
		return cbor.Tag{Number: num, Content: r.String()}
	}
}

func TestReaderTag(t *testing.T) {
	for _, num := range []uint64{6, 24, 255, 256, refTag, 65536, math.MaxUint64} {
		accepts(t, AppendString(AppendTagHead(nil, num), "héllo"), rTagged(num))
	}
	// Longer heads than needed: the library reads the same number.
	for _, h := range []string{"d9 f270", "da 0000f270", "db 000000000000f270"} {
		accepts(t, unhex(h+" 61 78"), rTagged(refTag))
	}
	accepts(t, unhex("d8 06 61 78"), rTagged(6))
	// Tags inside containers, each one item.
	two := unhex("82 d9f270 61 61 d9f270 61 62")
	accepts(t, two, func(r *Reader) []cbor.Tag { return ReadSlice(r, rTagged(refTag)) })
	accepts(t, unhex("a1 61 6b d9f270 61 76"), func(r *Reader) map[string]cbor.Tag {
		return ReadMap(r, rString, rTagged(refTag))
	})

	// Another number, no tag, an untagged item after the array's last.
	refuses(t, unhex("d9 f271 61 78"), rTagged(refTag), true)
	refuses(t, unhex("61 78"), rTagged(refTag), false)
	refuses(t, enc(1), rTagged(refTag), false)
	r := NewReader(unhex("81 d9f270 61 61"))
	r.ArrayHead()
	r.Tag(refTag)
	if r.String() != "a" {
		t.Error("the tagged string in an array")
	}
	r.Tag(refTag)
	if !r.Failed() {
		t.Error("Tag where the array holds no more items")
	}
	// A tag directly inside a tag counts a level in the library: refused.
	refuses(t, unhex("d9f270 d9f270 61 78"), rTagged(refTag), true)
	refuses(t, unhex("d9f270 d9d9f7 61 78"), rTagged(refTag), true)
	// Truncated heads and a tag without content.
	refuses(t, unhex("d9 f2"), rTagged(refTag), false)
	refuses(t, unhex("d9f270"), rTagged(refTag), false)
	refuses(t, unhex("db 0000"), rTagged(refTag), false)
	// Reserved additional information, indefinite length, a simple value.
	refuses(t, unhex("dc 61 78"), rTagged(refTag), false)
	refuses(t, unhex("df 61 78"), rTagged(refTag), false)
	refuses(t, unhex("f6"), rTagged(refTag), true)
	// The numbers the library interprets are refused whatever follows.
	for _, c := range []struct {
		num  uint64
		data string
	}{
		{0, "c0 74 323030302d30312d30325430333a30343a30355a"},
		{1, "c1 01"},
		{2, "c2 41 01"},
		{3, "c3 41 01"},
		{21, "d5 61 78"},
		{22, "d6 61 78"},
		{23, "d7 61 78"},
		{55799, "d9d9f7 61 78"},
	} {
		r := NewReader(unhex(c.data))
		r.Tag(c.num)
		if !r.Failed() {
			t.Errorf("Tag(%d) on %s: accepted", c.num, c.data)
		}
	}
	// Failed is sticky.
	r = NewReader(unhex("d9f270 61 78"))
	r.Fail()
	r.Tag(refTag)
	if r.String() != "" || r.Done() {
		t.Error("Tag after Fail")
	}
}

// TestReaderTagDepth checks that a tag opens no level, as in the library:
// MaxDepth arrays under a tag are accepted by both, one more by neither.
func TestReaderTagDepth(t *testing.T) {
	tagged := func(n int) []byte { return append(AppendTagHead(nil, refTag), nested(n)...) }
	rd := func(r *Reader) int {
		r.Tag(refTag)
		return rNested(r)
	}
	var v any
	if err := dm.Unmarshal(tagged(MaxDepth), &v); err != nil {
		t.Fatalf("library refuses a tag around %d levels: %v", MaxDepth, err)
	}
	if d, ok := read(tagged(MaxDepth), rd); !ok || d != MaxDepth {
		t.Errorf("a tag around %d levels: %d, %v", MaxDepth, d, ok)
	}
	if err := dm.Unmarshal(tagged(MaxDepth+1), &v); err == nil {
		t.Fatalf("library accepts a tag around %d levels", MaxDepth+1)
	}
	if _, ok := read(tagged(MaxDepth+1), rd); ok {
		t.Errorf("a tag around %d levels accepted", MaxDepth+1)
	}
}
