package core

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReassembly feeds a peer's chunk frames, split from one fuzzed byte
// string, to the read loop's reassembly: it must never panic, never hold
// more than maxChunking frames or more than the limit per frame, and give
// back, for a well-formed sequence, exactly the frame that was cut up.
func FuzzReassembly(f *testing.F) {
	whole := bytes.Repeat([]byte{0x88, 1, 2, 3}, 100)
	var seed []byte
	for off := 0; off < len(whole); off += 150 {
		end := min(off+150, len(whole))
		seed = append(seed, byte(len(appendChunk(nil, 7, end == len(whole), whole[off:end]))))
		seed = appendChunk(seed, 7, end == len(whole), whole[off:end])
	}
	f.Add(seed, uint16(1000))
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
			for _, b := range r {
				if len(b) > lim {
					t.Fatalf("a partial frame of %d bytes, over the limit %d", len(b), lim)
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
	var r reassembly
	var got []byte
	for off := 0; off < len(whole); off += chunkPiece {
		end := min(off+chunkPiece, len(whole))
		out, err := r.add(appendChunk(nil, 3, end == len(whole), whole[off:end]), DefaultMaxMessageSize)
		if err != nil {
			t.Fatal(err)
		}
		got = out
	}
	if !bytes.Equal(got, whole) || len(r) != 0 {
		t.Fatalf("reassembled %d bytes (%d held), want the %d-byte frame and nothing held", len(got), len(r), len(whole))
	}
	if _, err := r.add(appendChunk(nil, 4, false, make([]byte, 10)), 5); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("a chunked frame past the limit: %v; want ErrMessageTooLarge", err)
	}
}
