package harness

import (
	"fmt"
	"sync/atomic"
	"time"
)

// counter is the receiving side's tally of one-way messages, shared by
// every system: the receiver calls add for each message, and a sender
// waits for a batch with expect and await.
type counter struct {
	n    atomic.Int64 // messages received since setup
	want atomic.Int64 // the count that completes the current batch
	done atomic.Pointer[chan struct{}]
}

// expect starts a batch of n messages; the returned channel is closed
// when the count reaches the batch's end. Call it before sending the
// batch, and not again until the batch is complete.
func (c *counter) expect(n int) <-chan struct{} {
	done := make(chan struct{})
	c.done.Store(&done)
	c.want.Store(c.n.Load() + int64(n))
	return done
}

// add counts one message. Only one goroutine may call it at a time; the
// sends that caused it order it after expect.
func (c *counter) add() {
	if c.n.Add(1) == c.want.Load() {
		close(*c.done.Load())
	}
}

// await waits for done, for at most Timeout, or until stop is closed.
func (c *counter) await(done <-chan struct{}, stop <-chan struct{}) error {
	t := time.NewTimer(Timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-stop:
		return fmt.Errorf("closed after counting %d of %d messages", c.n.Load(), c.want.Load())
	case <-t.C:
		return fmt.Errorf("counted %d of %d messages in %v", c.n.Load(), c.want.Load(), Timeout)
	}
}
