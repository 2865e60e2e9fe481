package core

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// The outbox is what waits to go out on one connection, and the goroutine
// that writes it (docs/ARCHITECTURE.md, "The connection"). Two classes of
// frames wait there:
//
//   - control frames (heartbeats, credits, cancels, lookups, fails, and
//     replies that fit in one frame) go out first, in the order queued,
//     and queuing one never waits: the read loop and the heartbeat timer
//     queue them;
//   - data frames (sends, asks, large replies) wait in lanes, one per
//     target endpoint (one per ask for a large reply), and the lanes take
//     turns: each turn writes one whole small frame or one chunk of a
//     large one, so a large message never holds the connection.
//
// Only the writer goroutine calls Conn.WriteFrames, so a peer that stops
// reading blocks the writer alone: senders wait (bounded) for room,
// everything else goes on, and closing the connection releases the writer.

const (
	// chunkPiece is how many bytes of a large frame one chunk carries.
	chunkPiece = 64 << 10
	// batchBytes is about how much the writer hands the transport at once.
	batchBytes = 256 << 10
	// outboxLimit bounds the data bytes waiting in a connection's lanes:
	// a data frame is queued only while fewer are waiting, or when its
	// lane is empty, so that a large message queued for one endpoint
	// never keeps another's out. What waits is at most this plus one
	// frame per lane (and each lane's frames were admitted by its
	// endpoint's credit).
	outboxLimit = 4 << 20
	// ctrlLimit bounds the control bytes waiting. Control frames answer
	// what the peer sends; a peer that keeps sending without reading the
	// answers is closed when they pile up past this.
	ctrlLimit = 8 << 20
	// maxChunking is how many large frames may be crossing in chunks at
	// once on a connection, each direction. The receiver holds each one
	// until its last chunk, so this bounds what it reassembles.
	maxChunking = 16
	// initialWindow is the credit a sender starts with for each endpoint
	// of the peer (docs/PROTOCOL.md, "Flow control").
	initialWindow = 64 << 10
	// connWindow is how many bytes of data frames (sends, asks, chunks) a
	// sender may write ahead of what the peer's read loop has read
	// (docs/PROTOCOL.md, "Flow control"). It bounds what waits in the
	// kernel's and the transport's buffers, which no one can reorder, so
	// that a control frame or another lane's frame written now is read
	// within about this many bytes.
	connWindow = 512 << 10
)

// outFrame is a frame waiting in the outbox.
type outFrame struct {
	b      []byte
	pg     *page  // the page b was copied into, or nil: b is the sender's frame
	target string // a send's target, for dead letters ("" for anything else)
	typ    string
}

// A page holds small data frames copied into the outbox back to back, so
// that a sender gets its frame's memory back at once (it goes back to the
// free lists, hot in cache, instead of waiting in the outbox) and many
// small frames cost one buffer. A page goes back to its pool once every
// frame in it is written and it is no longer the one being filled.
type page struct {
	b    []byte
	refs int // frames in b not yet written
}

const (
	pageSize   = 64 << 10
	smallFrame = 2 << 10 // data frames up to this are copied into pages
)

var pages = sync.Pool{New: func() any { return &page{b: make([]byte, 0, pageSize)} }}

// copyIn copies f's frame into the current page, starting a new one when
// it is full. Called with mu held; the caller releases the original.
func (o *outbox) copyIn(f *outFrame) {
	n := len(f.b)
	if o.cur == nil || len(o.cur.b)+n > cap(o.cur.b) {
		if o.cur != nil && o.cur.refs == 0 {
			o.cur.b = o.cur.b[:0]
			pages.Put(o.cur)
		}
		o.cur = pages.Get().(*page)
	}
	at := len(o.cur.b)
	o.cur.b = append(o.cur.b, f.b...)
	o.cur.refs++
	f.b, f.pg = o.cur.b[at:at+n:at+n], o.cur
}

// written gives back the memory of frames the writer wrote. Called with mu
// held.
func (o *outbox) written(f *outFrame) {
	if f.pg == nil {
		releaseFrame(f.b)
		return
	}
	f.pg.refs--
	if f.pg.refs == 0 && f.pg != o.cur {
		f.pg.b = f.pg.b[:0]
		pages.Put(f.pg)
	}
}

// lane is the data frames for one endpoint (or one large reply), in the
// order queued.
type lane struct {
	key  uint64
	q    []outFrame // q[head:] wait; the storage is reused once all are out
	head int
	off  int    // bytes of q[head] already written as chunks
	id   uint64 // q[head]'s chunk id while it crosses in chunks; 0 before
}

func (l *lane) empty() bool { return l.head == len(l.q) }

// push adds f behind the frames waiting. A lane that never drains (its
// sender keeps up with the writer) would grow q without end, so the
// frames still waiting move to the front once the written ones are half
// of q: q stays within twice what waits.
func (l *lane) push(f outFrame) {
	if len(l.q) == cap(l.q) && l.head >= len(l.q)/2 && l.head > 0 {
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
	l.q = append(l.q, f)
}

type outbox struct {
	p *peer

	mu       sync.Mutex
	ctrl     []outFrame
	ctrlSize int
	lanes    map[uint64]*lane
	ring     []*lane // lanes with frames, in turn order
	turn     int
	data     int // bytes in lanes
	chunking int // frames being chunked
	lastID   uint64
	credit   map[string]int64 // per target endpoint: bytes we may still send (may be negative)
	window   int64            // bytes of data frames we may still write (connWindow, given back by the peer)
	cur      *page            // the page being filled (copyIn)
	err      error            // set once: the connection is closed
	waitCh   chan struct{}    // closed when room or credit appears, or on close; nil when no one waits
	wake     chan struct{}    // capacity 1: there is something to write

	// For flush: control frames queued and written so far (they go out
	// in the order queued), whether the writer holds a batch it has not
	// written yet, and whether a flush waits (each write then wakes it).
	ctrlQueued, ctrlWritten uint64
	writing, flushing       bool
}

func newOutbox(p *peer) *outbox {
	return &outbox{p: p, lanes: map[uint64]*lane{}, credit: map[string]int64{}, window: connWindow, wake: make(chan struct{}, 1)}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes every sender waiting for room or credit. Called with mu held.
func (o *outbox) broadcast() {
	if o.waitCh != nil {
		close(o.waitCh)
		o.waitCh = nil
	}
}

// control queues a control frame. It never waits; it fails only when the
// connection is closed, or when the peer has let more than ctrlLimit
// bytes of answers pile up (the connection is then closed).
func (o *outbox) control(frame []byte) error {
	o.mu.Lock()
	if o.err != nil {
		err := o.err
		o.mu.Unlock()
		releaseFrame(frame)
		return err
	}
	if o.ctrlSize+len(frame) > ctrlLimit {
		o.mu.Unlock()
		releaseFrame(frame)
		err := fmt.Errorf("%w: %s does not read what this env writes (%d bytes of control frames waiting)", ErrDisconnected, o.p.label(), o.ctrlSize)
		o.p.close(err)
		return err
	}
	o.ctrl = append(o.ctrl, outFrame{b: frame})
	o.ctrlSize += len(frame)
	o.ctrlQueued++
	o.mu.Unlock()
	o.signal()
	return nil
}

// queue puts a data frame on lane key once there is room (or the lane is
// empty) and, when to is not "", credit for endpoint to (which it
// consumes). It waits
// until then, or until done is closed or the deadline (if not zero)
// passes (it then returns errDone), or the connection closes. f.b is the
// caller's again only if it fails.
func (o *outbox) queue(key uint64, to string, f outFrame, done <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	for {
		o.mu.Lock()
		if o.err != nil {
			err := o.err
			o.mu.Unlock()
			return err
		}
		credit := int64(initialWindow) // an endpoint without an entry is at rest
		if to != "" {
			if c, ok := o.credit[to]; ok {
				credit = c
			}
		}
		l := o.lanes[key]
		if credit > 0 && (o.data < outboxLimit || l == nil || l.empty()) {
			if to != "" {
				o.credit[to] = credit - int64(len(f.b))
			}
			if l == nil {
				l = &lane{key: key}
				o.lanes[key] = l
			}
			if l.empty() {
				o.ring = append(o.ring, l)
			}
			orig := f.b
			if len(orig) <= smallFrame {
				o.copyIn(&f)
			} else {
				orig = nil
			}
			l.push(f)
			o.data += len(f.b)
			o.mu.Unlock()
			if orig != nil {
				releaseFrame(orig)
			}
			o.signal()
			return nil
		}
		if o.waitCh == nil {
			o.waitCh = make(chan struct{})
		}
		ch := o.waitCh
		o.mu.Unlock()
		if timeout == nil && !deadline.IsZero() { // only a sender that waits pays for a timer
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-done:
			return errDone
		case <-timeout:
			return errDone
		}
	}
}

// maxIdleLanes bounds the empty endpoint lanes a connection keeps, so
// that a message to an endpoint whose lane drained allocates no new one.
const maxIdleLanes = 1024

// maxCreditEntries bounds the credit entries a peer can make us keep by
// granting credit for endpoints we never sent to.
const maxCreditEntries = 4096

// errDone is what queue returns when its caller stopped waiting.
var errDone = errors.New("stopped waiting")

// addWindow gives the writer n more bytes of data to write, from a
// connection Credit frame.
func (o *outbox) addWindow(n uint64) {
	o.mu.Lock()
	o.window = min(o.window+int64(min(n, 1<<40)), 1<<41)
	o.mu.Unlock()
	o.signal()
}

// addCredit adds n bytes of credit for endpoint to, from a Credit frame.
// An entry back at the initial window is dropped: the map holds only the
// endpoints with business in flight.
func (o *outbox) addCredit(to string, n uint64) {
	o.mu.Lock()
	c, ok := o.credit[to]
	if !ok {
		c = initialWindow
	}
	c = min(c+int64(min(n, 1<<40)), 1<<41)
	switch {
	case c == initialWindow:
		delete(o.credit, to)
	case ok || len(o.credit) < maxCreditEntries:
		o.credit[to] = c
	}
	o.broadcast()
	o.mu.Unlock()
}

// close fails every later write with err and returns what was waiting.
func (o *outbox) close(err error) []outFrame {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return nil
	}
	o.err = err
	var left []outFrame
	for _, l := range o.ring {
		left = append(left, l.q[l.head:]...)
	}
	for _, f := range o.ctrl {
		releaseFrame(f.b)
	}
	o.ctrl, o.ring, o.lanes, o.data, o.ctrlSize = nil, nil, nil, 0, 0
	o.broadcast()
	o.signal()
	return left
}

// aloneWrites is how many batches of a single frame in a row make the
// writer stop yielding before it takes the queue.
const aloneWrites = 8

// run is the connection's writer: it writes what waits until the
// connection closes or a write fails. It is started when the connection
// is up and owned by the peer's env (env.wg).
func (o *outbox) run(conn Conn) {
	defer o.p.env.wg.Done()
	var (
		batch  [][]byte
		whole  []outFrame // frames in batch that end there: released after the write
		pieces [][]byte   // chunk frames in batch: released after the write
	)
	alone := 0
	for range o.wake {
		if alone < aloneWrites {
			// Frames have been arriving together: yield once so that the
			// goroutines this wake-up raced with (other askers, a worker's
			// next replies), often runnable on this P, add theirs to this
			// write. A lone asker would only wait for the yield, so after
			// a run of single-frame writes the writer stops yielding.
			runtime.Gosched()
		}
		for {
			o.mu.Lock()
			if o.err != nil {
				o.mu.Unlock()
				return
			}
			nctrl := uint64(len(o.ctrl))
			batch, whole, pieces = o.take(batch[:0], whole[:0], pieces[:0])
			o.writing = len(batch) > 0
			o.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if len(batch) == 1 {
				alone++
			} else {
				alone = 0
			}
			err := conn.WriteFrames(batch)
			o.p.sent.Add(1)
			n := 0
			for _, b := range batch {
				n += len(b)
			}
			o.p.bytesOut.Add(uint64(n))
			o.mu.Lock()
			for i := range whole {
				o.written(&whole[i])
				whole[i] = outFrame{}
			}
			o.writing = false
			if err == nil {
				o.ctrlWritten += nctrl
			}
			if o.flushing {
				o.broadcast()
			}
			o.mu.Unlock()
			for i, b := range pieces {
				releaseFrame(b)
				pieces[i] = nil
			}
			clear(batch)
			if err != nil {
				o.p.close(fmt.Errorf("%w: write to %s: %v", ErrDisconnected, o.p.label(), err))
				return
			}
		}
	}
}

// flush waits until what was queued before it is written: the control
// frames queued so far (replies among them) and every data frame, or
// until the connection closes, or stop or expired is closed. It is for
// Shutdown's graceful stage, when nothing queues data frames any more.
func (o *outbox) flush(stop, expired <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	target := o.ctrlQueued
	for o.err == nil && (o.ctrlWritten < target || len(o.ring) > 0 || o.writing) {
		o.flushing = true
		if o.waitCh == nil {
			o.waitCh = make(chan struct{})
		}
		ch := o.waitCh
		o.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
			o.mu.Lock()
			return
		case <-expired:
			o.mu.Lock()
			return
		}
		o.mu.Lock()
	}
}

// take fills batch with what goes out next: every control frame, then the
// lanes in turn, one frame or chunk each, up to about batchBytes. Called
// with mu held.
func (o *outbox) take(batch [][]byte, whole []outFrame, pieces [][]byte) ([][]byte, []outFrame, [][]byte) {
	size := 0
	for _, f := range o.ctrl {
		batch = append(batch, f.b)
		whole = append(whole, f)
		size += len(f.b)
	}
	clear(o.ctrl)
	o.ctrl, o.ctrlSize = o.ctrl[:0], 0
	freed := false
	for size < batchBytes && len(o.ring) > 0 && o.window > 0 {
		progress := false
		for i := 0; i < len(o.ring) && size < batchBytes && o.window > 0; {
			if o.turn >= len(o.ring) {
				o.turn = 0
			}
			l := o.ring[o.turn]
			f := &l.q[l.head]
			var out []byte
			done := false
			switch {
			case l.id == 0 && len(f.b) <= maxFrame:
				out, done = f.b, true
				whole = append(whole, *f)
			case l.id == 0 && o.chunking >= maxChunking:
				o.turn++ // waits for a chunked frame to finish
				i++
				continue
			default:
				if l.id == 0 {
					o.lastID++
					l.id = o.lastID
					o.chunking++
				}
				end := min(l.off+chunkPiece, len(f.b))
				done = end == len(f.b)
				total := 0
				if l.off == 0 {
					total = len(f.b) // the first chunk announces the frame's length
				}
				out = appendChunk(newFrame(chunkHeadMax + end - l.off)[:0], l.id, done, f.b[l.off:end], total)
				pieces = append(pieces, out)
				l.off = end
				if done {
					whole = append(whole, *f)
					o.chunking--
				}
			}
			batch = append(batch, out)
			size += len(out)
			o.window -= int64(len(out))
			progress = true
			if done {
				o.data -= len(f.b)
				freed = true
				l.q[l.head] = outFrame{}
				l.head++
				l.off, l.id = 0, 0
				if l.empty() {
					l.q, l.head = l.q[:0], 0
					if l.key&1 == 0 || len(o.lanes) > maxIdleLanes {
						delete(o.lanes, l.key) // a reply's lane, or too many kept
					}
					o.ring = append(o.ring[:o.turn], o.ring[o.turn+1:]...)
					continue // the next lane moved into this turn
				}
			}
			o.turn++
			i++
		}
		if !progress {
			break
		}
	}
	if freed && o.data < outboxLimit {
		o.broadcast()
	}
	return batch, whole, pieces
}
