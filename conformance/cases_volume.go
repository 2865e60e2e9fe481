package conformance

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// Messages of the payload and volume cases.
type (
	// Bulk is a message whose content the receiver recomputes from
	// Seed and len(Data) (see noise).
	Bulk struct {
		Seed uint64
		Data []byte
	}
	// Lot is message N of a lane, padded to vary frame sizes; Pad is
	// noise(len(Pad), N).
	Lot struct {
		N   int
		Pad []byte
	}
)

func init() {
	core.RegisterMessage[Bulk]("conformance.Bulk")
	core.RegisterMessage[Lot]("conformance.Lot")
}

// noisePeriod is the length of noiseTable: a prime, so that a shift by
// any multiple of 64 KiB (a chunk or a frame moved) changes the bytes.
const noisePeriod = 65521

// noiseTable is random bytes, fixed for a run.
var noiseTable = func() []byte {
	b := make([]byte, noisePeriod)
	rand.NewChaCha8([32]byte{'r', 'p', 'c', 'e', 'n', 'v'}).Read(b)
	return b
}()

// noise returns n bytes that depend on seed and on their position: a
// byte missing, repeated, changed or moved (a chunk swapped with
// another, which a short repeating pattern would hide) changes them. It
// is made by copying, so that it costs little under the race detector.
func noise(n int, seed uint64) []byte {
	b := make([]byte, n)
	off := int((seed*7919 + uint64(n)) % noisePeriod)
	for i := 0; i < n; off = 0 {
		i += copy(b[i:], noiseTable[off:])
	}
	return b
}

// damage describes how got differs from want, or returns "" if it does
// not.
func damage(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes arrived, %d were sent", len(got), len(want))
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("the bytes differ from offset %d of %d (64 KiB piece %d)", i, len(want), i/(64<<10))
}

// bigLimit is Config.MaxMessageSize for the payload cases.
const bigLimit = 4 << 20

// payloadSizes cross as one frame near the frame limit (65,436), just
// over it in two chunks (64 KiB + 1), in many chunks (1 MiB), and in as
// many as Config.MaxMessageSize allows.
var payloadSizes = []int{1, 64<<10 - 100, 64<<10 + 1, 1 << 20, bigLimit - 4096}

// networksWith are the network topologies with edit applied to both envs.
func networksWith(edit ...func(*core.Config)) []topology {
	return []topology{
		{"Remote", func(h *harness) (*core.Env, *core.Env) { return h.server("at", edit...), h.server("from", edit...) }},
		{"FromClientMode", func(h *harness) (*core.Env, *core.Env) { return h.server("at", edit...), h.client("from", edit...) }},
	}
}

// checker is an endpoint that checks every Bulk against its seed and
// reports the result; it answers an ask with a Bulk of seed+1 of the
// same size, so the reply's way is checked too.
func checker(results chan<- string) *probe {
	return &probe{receive: func(c *core.Context, msg any) error {
		b, ok := msg.(Bulk)
		if !ok {
			results <- fmt.Sprintf("got a %T, want a Bulk", msg)
			return nil
		}
		results <- damage(b.Data, noise(len(b.Data), b.Seed))
		if c.IsAsk() {
			return c.Reply(Bulk{Seed: b.Seed + 1, Data: noise(len(b.Data), b.Seed+1)})
		}
		return nil
	}}
}

var payloadCases = concat(
	across("LargeSendsArriveByteExact", networksWith(limit(bigLimit)), func(t *testing.T, h *harness, at, from *core.Env) {
		results := make(chan string, len(payloadSizes))
		h.register(at, "check", checker(results))
		ref := h.lookup(from, at, "check")
		for i, n := range payloadSizes {
			if err := ref.Send(Bulk{Seed: uint64(i), Data: noise(n, uint64(i))}); err != nil {
				t.Fatalf("Send of %d bytes: %v", n, err)
			}
		}
		for _, n := range payloadSizes {
			if d := recv(t, results, fmt.Sprintf("the Send of %d bytes", n)); d != "" {
				t.Errorf("a Send of %d bytes arrived damaged: %s", n, d)
			}
		}
	}),
	across("LargeAsksAndRepliesArriveByteExact", networksWith(limit(bigLimit)), func(t *testing.T, h *harness, at, from *core.Env) {
		results := make(chan string, len(payloadSizes))
		h.register(at, "check", checker(results))
		ref := h.lookup(from, at, "check")
		for i, n := range payloadSizes {
			seed := uint64(100 + 2*i)
			v, err := ask(t, ref, Bulk{Seed: seed, Data: noise(n, seed)})
			if err != nil {
				t.Fatalf("Ask of %d bytes: %v", n, err)
			}
			if d := recv(t, results, fmt.Sprintf("the Ask of %d bytes", n)); d != "" {
				t.Errorf("an Ask of %d bytes arrived damaged: %s", n, d)
			}
			b, ok := v.(Bulk)
			if !ok {
				t.Fatalf("the reply to an Ask of %d bytes is a %T, want a Bulk", n, v)
			}
			if d := damage(b.Data, noise(n, seed+1)); d != "" {
				t.Errorf("a Reply of %d bytes arrived damaged: %s", n, d)
			}
		}
	}),
)

// lane is the receiving end of one volume lane: it checks that messages
// arrive numbered 0, 1, 2... and counts them.
type lane struct {
	mu   sync.Mutex
	next int
	bad  string // the first fault seen
}

func (l *lane) receive(c *core.Context, msg any) error {
	if c.IsAsk() {
		return c.Reply(true) // a barrier: it comes after every send before it
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := msg.(Lot)
	switch {
	case !ok:
		l.fault(fmt.Sprintf("got a %T, want a Lot", msg))
	case m.N != l.next:
		l.fault(fmt.Sprintf("message %d arrived after %d messages: lost, repeated or out of order", m.N, l.next))
	case damage(m.Pad, noise(len(m.Pad), uint64(m.N))) != "":
		l.fault(fmt.Sprintf("message %d arrived damaged: %s", m.N, damage(m.Pad, noise(len(m.Pad), uint64(m.N)))))
	}
	if ok {
		l.next = m.N + 1
	}
	return nil
}

func (l *lane) fault(s string) {
	if l.bad == "" {
		l.bad = s
	}
}

// lot is message n of a lane: most are a few bytes, every fourth has a
// pad of up to 3 KiB, so frames of many sizes share each write.
func lot(n int) Lot {
	if n%4 != 3 {
		return Lot{N: n}
	}
	return Lot{N: n, Pad: noise(n*37%3000, uint64(n))}
}

// sendLanes sends each lane's messages in turn, one goroutine for all
// lanes, until each got perLane.
func sendLanes(refs []*core.Ref, perLane int) error {
	for n := range perLane {
		for _, r := range refs {
			if err := r.Send(lot(n)); err != nil {
				return fmt.Errorf("Send of message %d to %s: %w", n, r, err)
			}
		}
	}
	return nil
}

// checkLanes asks every lane (the ask arrives after every send before
// it) and checks that each got exactly perLane messages, in order.
func checkLanes(t *testing.T, side string, refs []*core.Ref, lanes []*lane, perLane int) {
	t.Helper()
	for i, r := range refs {
		if _, err := ask(t, r, Ping{}); err != nil {
			t.Fatalf("%s: the ask after the sends to lane %d: %v", side, i, err)
		}
		l := lanes[i]
		l.mu.Lock()
		if l.bad != "" {
			t.Errorf("%s: lane %d: %s", side, i, l.bad)
		} else if l.next != perLane {
			t.Errorf("%s: lane %d received %d messages, want %d", side, i, l.next, perLane)
		}
		l.mu.Unlock()
	}
}

var volumeCases = across("ThousandsOfSendsOverEightLanesArriveInOrderExactlyOnceBothWays", networks, func(t *testing.T, h *harness, at, from *core.Env) {
	const (
		lanes   = 8
		forth   = 1500 // per lane, from the sender to at: 12,000 messages
		back    = 500  // per lane, from at to the sender: 4,000 messages
		regName = "reg"
	)
	refs := make(chan *core.Ref, lanes)
	h.register(at, regName, &probe{receive: func(c *core.Context, msg any) error {
		refs <- msg.(Carry).Ref
		return c.Reply(true)
	}})
	reg := h.lookup(from, at, regName)
	var atLanes, fromLanes []*lane
	var toAt, toFrom []*core.Ref
	for i := range lanes {
		l := &lane{}
		h.register(at, fmt.Sprint("lane", i), &probe{receive: l.receive})
		atLanes = append(atLanes, l)
		toAt = append(toAt, h.lookup(from, at, fmt.Sprint("lane", i)))
		m := &lane{}
		ref := h.register(from, fmt.Sprint("lane", i), &probe{receive: m.receive})
		fromLanes = append(fromLanes, m)
		if _, err := ask(t, reg, Carry{Ref: ref}); err != nil {
			t.Fatal(err)
		}
		toFrom = append(toFrom, recv(t, refs, "a lane's ref"))
	}
	errs := make(chan error, 2)
	go func() { errs <- sendLanes(toAt, forth) }()
	go func() { errs <- sendLanes(toFrom, back) }()
	for range 2 {
		if err := recv(t, errs, "the senders"); err != nil {
			t.Fatal(err)
		}
	}
	checkLanes(t, "sender to listener", toAt, atLanes, forth)
	checkLanes(t, "listener to sender", toFrom, fromLanes, back)
})
