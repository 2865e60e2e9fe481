package inproc

import (
	"testing"
)

func TestBuffersAreRecycledBySizeClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 256}, {256, 256}, {257, 384}, {64<<10 + 100, 96 << 10}, {128 << 10, 128 << 10}, {128<<10 + 1, 128<<10 + 1},
	} {
		b := alloc(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.class {
			t.Errorf("alloc(%d): len %d, cap %d; want cap %d", tc.n, len(*b), cap(*b), tc.class)
		}
		free(b)
	}
}

// A frame over the reader's limit is queued as its size only: nothing is
// copied, nor counted against the unread bound.
func TestAFrameOverTheReadersLimitIsNotCopied(t *testing.T) {
	q := newQueue(10)
	if err := q.push([][]byte{make([]byte, 11)}); err != nil {
		t.Fatal(err)
	}
	e, err := q.pop()
	if err != nil || e.buf != nil || e.n != 11 || q.bytes != 0 {
		t.Fatalf("pop = %+v, %v (%d bytes unread); want the size alone", e, err, q.bytes)
	}
}
