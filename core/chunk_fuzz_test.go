package core

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzReassembly feeds a peer's chunk frames, split from one fuzzed byte
// string, to the read loop's reassembly: it must never panic, never hold
// more than maxChunking frames or more than the limit per frame, and give
// back, for a well-formed sequence, exactly the frame that was cut up.
func FuzzReassembly(f *testing.F) {
	whole := bytes.Repeat([]byte{0x88, 1, 2, 3}, 100)
	for _, announce := range []bool{false, true} {
		var seed []byte
		for off := 0; off < len(whole); off += 150 {
			end := min(off+150, len(whole))
			total := 0
			if announce && off == 0 {
				total = len(whole)
			}
			seed = append(seed, byte(len(appendChunk(nil, 7, end == len(whole), whole[off:end], total))))
			seed = appendChunk(seed, 7, end == len(whole), whole[off:end], total)
		}
		f.Add(seed, uint16(1000))
	}
	f.Add([]byte{6, 0x84, 17, 1, 0x19, 0xff, 0xff, 0x41, 0}, uint16(10)) // a total over the limit
	f.Add([]byte{5, 0x83, 17, 1, 0x41, 0}, uint16(10))
	f.Add([]byte{3, 0x83, 18, 0}, uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		var r reassembly
		lim := int(limit) + 1
		for len(data) > 0 {
			n := int(data[0])
			data = data[1:]
			if n > len(data) {
				n = len(data)
			}
			frame := data[:n]
			data = data[n:]
			if !isChunk(frame) {
				continue
			}
			out, err := r.add(frame, lim)
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("a bad chunk gave %v, not ErrProtocol", err)
				}
				return // the connection would close here
			}
			if len(r) > maxChunking {
				t.Fatalf("%d frames held at once", len(r))
			}
			for _, p := range r {
				if len(p.buf) > lim || cap(p.buf) > max(lim, maxReserve) {
					t.Fatalf("a partial frame of %d bytes (room for %d), over the limit %d", len(p.buf), cap(p.buf), lim)
				}
			}
			if out != nil && len(out) > lim {
				t.Fatalf("a whole frame of %d bytes, over the limit %d", len(out), lim)
			}
		}
	})
}

func TestReassemblyGivesBackTheFrameCutIntoChunks(t *testing.T) {
	whole := bytes.Repeat([]byte{0x88, 9}, 3*chunkPiece)
	for _, announce := range []bool{false, true} {
		var r reassembly
		var got []byte
		for off := 0; off < len(whole); off += chunkPiece {
			end := min(off+chunkPiece, len(whole))
			total := 0
			if announce && off == 0 {
				total = len(whole)
			}
			out, err := r.add(appendChunk(nil, 3, end == len(whole), whole[off:end], total), DefaultMaxMessageSize)
			if err != nil {
				t.Fatal(err)
			}
			got = out
		}
		if !bytes.Equal(got, whole) || len(r) != 0 {
			t.Fatalf("announced %v: reassembled %d bytes (%d held), want the %d-byte frame and nothing held", announce, len(got), len(r), len(whole))
		}
		if announce && cap(got) != len(whole) {
			t.Errorf("with the total announced, the frame was joined in %d bytes of room, want exactly its %d", cap(got), len(whole))
		}
	}
	var r reassembly
	if _, err := r.add(appendChunk(nil, 4, false, make([]byte, 10), 0), 5); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("a chunked frame past the limit: %v; want ErrMessageTooLarge", err)
	}
}

// TestReassemblyHoldsTheAnnouncedTotal checks the first chunk's total: it
// bounds the frame both ways, comes only first, and never reserves more
// than maxReserve before the bytes arrive.
func TestReassemblyHoldsTheAnnouncedTotal(t *testing.T) {
	piece := make([]byte, 10)
	for _, c := range []struct {
		name   string
		chunks [][]byte
		want   string
	}{
		{"over the limit", [][]byte{appendChunk(nil, 1, false, piece, 1000)}, "announces 1000 bytes"},
		{"longer than announced", [][]byte{appendChunk(nil, 1, false, piece, 15), appendChunk(nil, 1, true, piece, 0)}, "past the 15 bytes"},
		{"shorter than announced", [][]byte{appendChunk(nil, 1, false, piece, 25), appendChunk(nil, 1, true, piece, 0)}, "announced 25"},
		{"a total after the first chunk", [][]byte{appendChunk(nil, 1, false, piece, 30), appendChunk(nil, 1, true, piece, 30)}, "after its frame's first chunk"},
		{"a total of 0", [][]byte{{0x84, 17, 1, 0, 0x41, 0}}, "bad chunk total"},
	} {
		var r reassembly
		var err error
		for _, ch := range c.chunks {
			if _, err = r.add(ch, 100); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrProtocol saying %q", c.name, err, c.want)
		}
	}
	var r reassembly
	if _, err := r.add(appendChunk(nil, 2, false, piece, 64<<20), 128<<20); err != nil {
		t.Fatal(err)
	}
	if c := cap(r[2].buf); c != maxReserve {
		t.Errorf("a 64 MiB total reserved %d bytes before they arrived, want %d", c, maxReserve)
	}
}
