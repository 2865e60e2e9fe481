package core

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func testOutbox() *outbox {
	return newOutbox(&peer{env: &Env{}, dialAddr: "test://peer", closed: make(chan struct{})})
}

// drain takes batches until the outbox is empty, returning every frame
// in the order the writer would write them (copied: chunk frames are
// recycled by the writer).
func drain(o *outbox) [][]byte {
	var out [][]byte
	for {
		o.mu.Lock()
		o.window = connWindow // the peer read everything so far
		batch, _, _ := o.take(nil, nil, nil)
		o.mu.Unlock()
		if len(batch) == 0 {
			return out
		}
		for _, f := range batch {
			out = append(out, append([]byte(nil), f...))
		}
	}
}

func testFrame(t *testing.T, kind uint8, to string, size int) []byte {
	t.Helper()
	body := bytes.Repeat([]byte{byte(size)}, size)
	f, err := encodeFrame(&header{kind: kind, to: to, typ: "bytes"}, body, DefaultMaxMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestOutboxWritesControlFramesAheadOfData(t *testing.T) {
	o := testOutbox()
	data := testFrame(t, kindSend, "x", 100)
	if err := o.queue(laneOf("x"), "x", outFrame{b: bytes.Clone(data)}, nil, time.Time{}); err != nil { // a small frame goes back to the free lists
		t.Fatal(err)
	}
	beat := testFrame(t, kindBeat, "", 0)
	if err := o.control(beat); err != nil {
		t.Fatal(err)
	}
	got := drain(o)
	if len(got) != 2 || !bytes.Equal(got[0], beat) || !bytes.Equal(got[1], data) {
		t.Fatalf("frames written: %d; want the heartbeat queued last first, then the send", len(got))
	}
}

func TestOutboxInterleavesALargeFrameWithOtherLanes(t *testing.T) {
	o := testOutbox()
	big := testFrame(t, kindSend, "bulk", 10*chunkPiece+123)
	if err := o.queue(laneOf("bulk"), "bulk", outFrame{b: big}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var small [][]byte
	for i := range 5 {
		f := testFrame(t, kindAsk, "echo", 10+i)
		small = append(small, bytes.Clone(f)) // a small frame goes back to the free lists once queued
		if err := o.queue(laneOf("echo"), "echo", outFrame{b: f}, nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		parts   reassembly
		whole   []byte
		seen    int
		chunks  int
		beforeL int // small frames written before the big frame's last chunk
	)
	for _, f := range drain(o) {
		if len(f) > maxFrame {
			t.Fatalf("a frame of %d bytes, over the %d-byte frame limit", len(f), maxFrame)
		}
		if !isChunk(f) {
			if !bytes.Equal(f, small[seen]) {
				t.Fatalf("small frame %d out of order", seen)
			}
			seen++
			if whole == nil {
				beforeL++
			}
			continue
		}
		chunks++
		out, err := parts.add(f, DefaultMaxMessageSize)
		if err != nil {
			t.Fatal(err)
		}
		if out != nil {
			whole = out
		}
	}
	if !bytes.Equal(whole, big) {
		t.Fatalf("the chunks reassemble to %d bytes, want the %d-byte frame", len(whole), len(big))
	}
	if chunks != 11 || seen != 5 {
		t.Errorf("%d chunks and %d small frames; want 11 and 5", chunks, seen)
	}
	if beforeL != 5 {
		t.Errorf("%d of 5 small frames went out before the large frame's last chunk; want all: they take turns", beforeL)
	}
}

func TestOutboxSendersWaitForCredit(t *testing.T) {
	o := testOutbox()
	first := testFrame(t, kindSend, "x", initialWindow) // more than the window with its envelope
	if err := o.queue(laneOf("x"), "x", outFrame{b: first}, nil, time.Time{}); err != nil {
		t.Fatalf("the first message is admitted while credit is positive: %v", err)
	}
	giveUp := make(chan struct{})
	close(giveUp)
	if err := o.queue(laneOf("x"), "x", outFrame{b: testFrame(t, kindSend, "x", 1)}, giveUp, time.Time{}); err != errDone {
		t.Fatalf("a send without credit returned %v; want it to wait (errDone once given up)", err)
	}
	if err := o.queue(laneOf("y"), "y", outFrame{b: testFrame(t, kindSend, "y", 1)}, giveUp, time.Time{}); err != nil {
		t.Fatalf("a send to another endpoint waited: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- o.queue(laneOf("x"), "x", outFrame{b: testFrame(t, kindSend, "x", 1)}, nil, time.Time{})
	}()
	o.addCredit("x", uint64(len(first)))
	if err := <-done; err != nil {
		t.Fatalf("a send released by credit returned %v", err)
	}
	blocked := make(chan error, 1)
	o.mu.Lock()
	o.credit["x"] = -1
	o.mu.Unlock()
	go func() {
		blocked <- o.queue(laneOf("x"), "x", outFrame{b: testFrame(t, kindSend, "x", 1)}, nil, time.Time{})
	}()
	cause := errors.New("gone")
	o.close(cause)
	if err := <-blocked; err != cause {
		t.Fatalf("a send blocked when the connection closed returned %v; want the close's cause", err)
	}
}

func TestOutboxAskGivesUpAtItsDeadline(t *testing.T) {
	o := testOutbox()
	o.credit["x"] = 0
	if err := o.queue(laneOf("x"), "x", outFrame{b: testFrame(t, kindAsk, "x", 1)}, nil, time.Now()); err != errDone {
		t.Fatalf("an ask without credit whose deadline passed returned %v; want errDone", err)
	}
}

func TestOutboxWritesNoMoreDataThanTheConnectionWindow(t *testing.T) {
	o := testOutbox()
	big := testFrame(t, kindSend, "bulk", 4*connWindow)
	if err := o.queue(laneOf("bulk"), "bulk", outFrame{b: big}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	written := 0
	for {
		o.mu.Lock()
		batch, _, _ := o.take(nil, nil, nil)
		o.mu.Unlock()
		if len(batch) == 0 {
			break
		}
		for _, f := range batch {
			written += len(f)
		}
	}
	if written < connWindow || written > connWindow+maxFrame {
		t.Fatalf("%d bytes written without a window update; want the window (%d), overdrawn by at most one frame", written, connWindow)
	}
	beat := testFrame(t, kindBeat, "", 0)
	o.control(beat)
	o.mu.Lock()
	batch, _, _ := o.take(nil, nil, nil)
	o.mu.Unlock()
	if len(batch) != 1 || !bytes.Equal(batch[0], beat) {
		t.Fatalf("with the window spent, the writer took %d frames; want the control frame alone", len(batch))
	}
	o.addWindow(connWindow)
	o.mu.Lock()
	batch, _, _ = o.take(nil, nil, nil)
	o.mu.Unlock()
	if len(batch) == 0 {
		t.Fatal("a window update did not let data go on")
	}
}

// A lane whose sender keeps up with the writer never empties; its queue
// must still stay within a small multiple of what waits, not grow with
// every frame ever sent through it.
func TestOutboxLaneThatNeverDrainsStaysSmall(t *testing.T) {
	o := testOutbox()
	key := laneOf("x")
	push := func() {
		f := testFrame(t, kindSend, "x", 8)
		o.addCredit("x", uint64(len(f))) // the peer keeps up
		if err := o.queue(key, "x", outFrame{b: f}, nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	push()
	for range 100_000 {
		push()
		o.mu.Lock()
		o.window = 1 // room for one frame: the lane keeps the other
		batch, whole, _ := o.take(nil, nil, nil)
		for i := range whole {
			o.written(&whole[i])
		}
		o.mu.Unlock()
		if len(batch) != 1 {
			t.Fatalf("took %d frames; want 1", len(batch))
		}
	}
	o.mu.Lock()
	l := o.lanes[key]
	waiting, size := len(l.q)-l.head, cap(l.q)
	o.mu.Unlock()
	if waiting != 1 || size > 16 {
		t.Fatalf("lane queue holds %d slots for %d waiting frames: it grows with every frame sent", size, waiting)
	}
}
