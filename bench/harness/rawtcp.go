package harness

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// rawTCPSystem is the floor for TCP: length-prefixed frames written by
// hand on one loopback connection, with no encoding.
//
// An ask frame is a 4-byte big-endian length n, an 8-byte call id and
// n-8 bytes of payload; the server sends each frame back as it came. With
// one caller, the caller writes its frame and reads the reply itself. With
// more, they share the connection: each writes its frame under a mutex,
// and one reader goroutine hands each reply to the caller whose id it
// carries. A one-way frame is a 4-byte length and the payload. A stream
// is a connection of its own, with no frames at all (rawStreamer).
type rawTCPSystem struct{}

func (rawTCPSystem) Name() string { return "raw-tcp" }
func (rawTCPSystem) Group() Group { return GroupFloor }

const (
	rawHeader = 4 + 8    // length and call id
	rawBuffer = 64 << 10 // bufio sizes
)

// rawAsker is the client of one connection to an echo server.
type rawAsker struct {
	conn    net.Conn
	server  net.Conn
	wg      sync.WaitGroup // the server, and the reader when multiplexing
	wmu     sync.Mutex     // one frame at a time on conn
	slots   []*rawSlot     // by call id
	dead    chan struct{}  // closed by the reader when conn fails
	readErr error          // set before dead is closed
	callers []AskFunc
	once    sync.Once
}

// rawSlot is one caller's state: its reply buffer, which the reader fills
// while the caller waits, and the channel on which it learns that it has.
type rawSlot struct {
	header [rawHeader]byte // the reply's header, with one caller
	frame  []byte          // the request frame, rebuilt in place for each call
	reply  []byte          // the reply's payload, capacity reused
	ready  chan int        // the reply's payload length
}

func (s rawTCPSystem) NewAsker(callers int) (Asker, error) {
	client, server, err := loopback()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	a := &rawAsker{conn: client, server: server, dead: make(chan struct{})}
	a.wg.Go(func() { rawEcho(server) })
	for id := range callers {
		slot := &rawSlot{ready: make(chan int, 1)}
		a.slots = append(a.slots, slot)
		if callers == 1 {
			a.callers = append(a.callers, func(req []byte) ([]byte, error) { return a.pingPong(slot, req) })
		} else {
			a.callers = append(a.callers, func(req []byte) ([]byte, error) { return a.call(slot, uint64(id), req) })
		}
	}
	if callers > 1 {
		a.wg.Go(a.read)
	}
	return a, nil
}

func (a *rawAsker) Callers() []AskFunc { return a.callers }

// frameFor builds req's frame for call id in slot.frame and returns it.
func (slot *rawSlot) frameFor(id uint64, req []byte) []byte {
	f := slot.frame[:0]
	f = binary.BigEndian.AppendUint32(f, uint32(8+len(req)))
	f = binary.BigEndian.AppendUint64(f, id)
	f = append(f, req...)
	slot.frame = f
	return f
}

// pingPong is an ask of the only caller: write the frame, read the reply,
// no other goroutine involved.
func (a *rawAsker) pingPong(slot *rawSlot, req []byte) ([]byte, error) {
	if _, err := a.conn.Write(slot.frameFor(0, req)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(a.conn, slot.header[:]); err != nil {
		return nil, err
	}
	n, err := rawPayloadLen(slot.header[:])
	if err != nil {
		return nil, err
	}
	slot.reply = grow(slot.reply, n)
	_, err = io.ReadFull(a.conn, slot.reply)
	return slot.reply, err
}

// call is an ask of one of several callers sharing the connection.
func (a *rawAsker) call(slot *rawSlot, id uint64, req []byte) ([]byte, error) {
	frame := slot.frameFor(id, req)
	a.wmu.Lock()
	_, err := a.conn.Write(frame)
	a.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case n := <-slot.ready:
		return slot.reply[:n], nil
	case <-a.dead:
		return nil, a.readErr
	}
}

// read routes each reply to its caller: it reads the payload straight
// into the caller's buffer, which the caller does not touch while it
// waits.
func (a *rawAsker) read() {
	defer close(a.dead)
	r := bufio.NewReaderSize(a.conn, rawBuffer)
	var h [rawHeader]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			a.readErr = err
			return
		}
		n, err := rawPayloadLen(h[:])
		id := binary.BigEndian.Uint64(h[4:])
		if err == nil && id >= uint64(len(a.slots)) {
			err = fmt.Errorf("reply to unknown call %d", id)
		}
		if err != nil {
			a.readErr = err
			return
		}
		slot := a.slots[id]
		slot.reply = grow(slot.reply, n)
		if _, err := io.ReadFull(r, slot.reply); err != nil {
			a.readErr = err
			return
		}
		slot.ready <- n
	}
}

// Close closes both ends and waits for the server and the reader.
func (a *rawAsker) Close() error {
	a.once.Do(func() {
		a.conn.Close()
		a.server.Close()
		a.wg.Wait()
	})
	return nil
}

// rawPayloadLen returns the payload length of an ask frame's header.
func rawPayloadLen(h []byte) (int, error) {
	n := binary.BigEndian.Uint32(h)
	if n < 8 || n > 8+maxPayload {
		return 0, fmt.Errorf("bad frame length %d", n)
	}
	return int(n - 8), nil
}

// maxPayload bounds the frames the floors accept.
const maxPayload = 16 << 20

// grow returns b with length n, reusing its capacity.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// rawEcho sends every frame it reads back as it came, until the
// connection fails. It flushes when it has no more frames buffered, so
// that frames that arrived together go back together.
func rawEcho(c net.Conn) {
	r := bufio.NewReaderSize(c, rawBuffer)
	w := bufio.NewWriterSize(c, rawBuffer)
	var h [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(h[:])
		if n > 8+maxPayload {
			return
		}
		buf = grow(buf, int(n))
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		w.Write(h[:])
		w.Write(buf)
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// rawSender writes one-way frames through a bufio.Writer to a server that
// counts them (or, for slow-heap, calls its function for each).
type rawSender struct {
	conn   net.Conn
	server net.Conn
	w      *bufio.Writer
	frame  []byte
	count  *counter      // nil for slow-heap
	stop   chan struct{} // closed by Close
	wg     sync.WaitGroup
	once   sync.Once
}

func (s rawTCPSystem) NewSender() (Sender, error) {
	c := new(counter)
	snd, err := s.newSender(c.add)
	if err != nil {
		return nil, err
	}
	snd.count = c
	return snd, nil
}

// newSender connects a client to a server that calls receive for each
// one-way frame.
func (s rawTCPSystem) newSender(receive func()) (*rawSender, error) {
	client, server, err := loopback()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	snd := &rawSender{conn: client, server: server, w: bufio.NewWriterSize(client, rawBuffer), stop: make(chan struct{})}
	snd.wg.Go(func() { rawReceive(server, receive) })
	return snd, nil
}

func (s *rawSender) SendN(msg []byte, n int) error {
	s.frame = binary.BigEndian.AppendUint32(s.frame[:0], uint32(len(msg)))
	s.frame = append(s.frame, msg...)
	done := s.count.expect(n)
	for i := range n {
		if _, err := s.w.Write(s.frame); err != nil {
			return fmt.Errorf("send %d of %d: %w", i+1, n, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.count.await(done, s.stop)
}

// Send writes one frame into the buffer, which goes out when full: the
// floor's batching, as SendN's. A slow server fills the kernel's socket
// buffers, and then Send waits.
func (s *rawSender) Send(msg []byte) error {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(msg)))
	if _, err := s.w.Write(h[:]); err != nil {
		return err
	}
	_, err := s.w.Write(msg)
	return err
}

// Close closes both ends and waits for the server.
func (s *rawSender) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.conn.Close()
		s.server.Close()
		s.wg.Wait()
	})
	return nil
}

// rawReceive calls receive for each one-way frame it reads, until the
// connection fails.
func rawReceive(c net.Conn, receive func()) {
	r := bufio.NewReaderSize(c, rawBuffer)
	var h [4]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(h[:])
		if n > maxPayload {
			return
		}
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		receive()
	}
}

func (s rawTCPSystem) NewBulkAsker(func()) (BulkAsker, error) {
	return nil, fmt.Errorf("%s: asks during bulk sends: %w (on one connection a floor would make each ask wait behind a whole bulk frame, and interleaving them takes a framing layer: a library, not a floor)", s.Name(), errors.ErrUnsupported)
}

func (s rawTCPSystem) NewSlowSender(receive func()) (SlowSender, error) { return s.newSender(receive) }

// rawStreamer is the floor's stream: a new loopback TCP connection per
// stream, written straight, half-closed (CloseWrite) and answered by a
// server that reads it to its end (sinkStream), one connection at a
// time.
type rawStreamer struct {
	l      net.Listener
	wg     sync.WaitGroup // serve
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open, of either side; Close closes them
	closed bool
	once   sync.Once
}

func (s rawTCPSystem) NewStreamer() (Streamer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	rs := &rawStreamer{l: l, conns: map[net.Conn]struct{}{}}
	rs.wg.Go(rs.serve)
	return rs, nil
}

// serve serves one connection after another, until Close closes the
// listener.
func (s *rawStreamer) serve() {
	for {
		c, err := s.l.Accept()
		if err != nil || !s.track(c) {
			return
		}
		sinkStream(c) // on failure, the client sees the connection end without an answer
		s.forget(c)
	}
}

func (s *rawStreamer) Stream(chunk []byte, n int64) (int64, error) {
	c, err := net.DialTimeout("tcp", s.l.Addr().String(), Timeout)
	if err != nil {
		return 0, err
	}
	if !s.track(c) {
		return 0, errClosed
	}
	defer s.forget(c)
	if err := writeN(c, chunk, n); err != nil {
		return 0, err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	return readAnswer(c)
}

// track adds c to the connections that Close closes; after Close, it
// closes c and returns false.
func (s *rawStreamer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// forget closes c and removes it from the tracked connections.
func (s *rawStreamer) forget(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close closes the listener and every open connection, and waits for the
// server.
func (s *rawStreamer) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.l.Close()
		s.wg.Wait()
	})
	return nil
}
