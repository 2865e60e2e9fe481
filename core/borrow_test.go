package core_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/codectest"
	"github.com/rpcenv/rpcenv/transports/tcp"
)

// checker checks that each message's Data is filled with its ID's low
// byte while Receive runs, and echoes asks.
type checker struct{ seen chan bool }

func (c checker) Receive(ctx *core.Context, msg any) error {
	m := msg.(codectest.Flat)
	if ctx.IsAsk() {
		return ctx.Reply(m)
	}
	ok := len(m.Data) > 0
	for _, b := range m.Data {
		if b != byte(m.ID) {
			ok = false
			break
		}
	}
	c.seen <- ok
	return nil
}

// TestBorrowedBytes checks that an endpoint registered WithBorrowedBytes
// gets large messages intact, answers asks with them, and costs no
// allocation of the payload per message, where an endpoint without the
// option allocates a copy of it.
func TestBorrowedBytes(t *testing.T) {
	// Over TCP, where the sender's frames go back to the free lists once
	// written (inproc hands them to the receiver), so that what is
	// allocated per message is the receiving side's.
	tr := tcp.New(tcp.Options{})
	srv, err := core.NewEnv(core.Config{Name: "srv", Listen: "tcp://127.0.0.1:0", Transports: []core.Transport{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := core.NewEnv(core.Config{Name: "cli", Transports: []core.Transport{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const size = 60 << 10 // one frame (no chunks), lent in a 64 KiB one
	payloads := make([][]byte, 256)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte(i)}, size)
	}
	refs := map[bool]*core.Ref{}
	seen := map[bool]chan bool{}
	for _, borrow := range []bool{false, true} {
		name := "owns"
		opts := []core.EndpointOption{}
		if borrow {
			name = "borrows"
			opts = append(opts, core.WithBorrowedBytes())
		}
		seen[borrow] = make(chan bool, 1)
		if _, err := srv.Register(name, checker{seen: seen[borrow]}, opts...); err != nil {
			t.Fatal(err)
		}
		if refs[borrow], err = cli.Lookup(ctx, srv.Address()+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	// send sends n messages, one at a time, and returns the bytes the
	// process allocated per message.
	send := func(borrow bool, n int) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			if err := refs[borrow].Send(codectest.Flat{ID: int64(i), Data: payloads[i%len(payloads)]}); err != nil {
				t.Fatal(err)
			}
			select {
			case ok := <-seen[borrow]:
				if !ok {
					t.Fatalf("borrow %v: message %d arrived with other bytes", borrow, i)
				}
			case <-ctx.Done():
				t.Fatalf("borrow %v: message %d not received", borrow, i)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
	}
	per := map[bool]uint64{}
	for _, borrow := range []bool{false, true} {
		send(borrow, 20) // warm the free lists
		per[borrow] = send(borrow, 300)
		t.Logf("borrow %v: %d bytes allocated per %d-byte message", borrow, per[borrow], size)
	}
	// The owning endpoint's copy is the difference. The rest is the same
	// for both on average, and larger and noisier under the race detector,
	// whose sync.Pool drops some of what it is given (encode buffers are
	// pooled): hence half a payload as the bound, not the whole.
	if per[false] < size {
		t.Errorf("without WithBorrowedBytes: %d bytes allocated per message, want at least the payload's %d (a copy the endpoint owns)", per[false], size)
	}
	if per[true]+size/2 > per[false] {
		t.Errorf("WithBorrowedBytes: %d bytes allocated per message, against %d without: want it to save most of the payload's %d", per[true], per[false], size)
	}
	// An ask's reply, encoded while Receive runs, carries the bytes.
	v, err := refs[true].Ask(ctx, codectest.Flat{ID: 7, Data: payloads[7]})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(codectest.Flat); got.ID != 7 || !bytes.Equal(got.Data, payloads[7]) {
		t.Errorf("echoed ask: ID %d, %d bytes, equal %v", got.ID, len(got.Data), bytes.Equal(got.Data, payloads[7]))
	}
}
