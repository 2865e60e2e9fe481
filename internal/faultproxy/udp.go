package faultproxy

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// udpBufSize holds the largest UDP payload, so no datagram is truncated.
const udpBufSize = 64 << 10

// UDP is a fault-injecting UDP proxy: each datagram received on its
// address is sent on to the target from a socket kept for the sender, so
// the target's replies on that socket go back to that sender. It keeps at
// most 1024 senders, until Close; datagrams from more are dropped. Its
// methods are safe for concurrent use by multiple goroutines.
type UDP struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	st     *state
	cfg    config
	held   heldQueue
	done   chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	clients map[netip.AddrPort]*udpClient

	forwarded atomic.Uint64
	dropped   atomic.Uint64

	wg sync.WaitGroup // readClients, release, and readTarget per client
}

// Stats counts a UDP proxy's datagrams, both directions together.
type Stats struct {
	// Forwarded is the datagrams sent on.
	Forwarded uint64
	// Dropped is the datagrams lost: to Loss, to a partition, to a full
	// delay queue or client table, or to a failed send.
	Dropped uint64
}

// NewUDP listens on the UDP address listen ("127.0.0.1:0" if empty) and
// forwards the datagrams received there to target.
func NewUDP(listen, target string) (*UDP, error) {
	return newUDP(listen, target, defaultConfig())
}

func newUDP(listen, target string, cfg config) (*UDP, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target: %w", err)
	}
	ln, err := net.ListenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &UDP{
		ln:      ln.(*net.UDPConn),
		target:  taddr,
		st:      newState(),
		cfg:     cfg,
		held:    heldQueue{ready: make(chan struct{}, 1)},
		done:    make(chan struct{}),
		clients: make(map[netip.AddrPort]*udpClient),
	}
	p.wg.Go(p.readClients)
	p.wg.Go(p.release)
	return p, nil
}

// Addr returns the address the proxy listens on, for clients to send to.
func (p *UDP) Addr() string { return p.ln.LocalAddr().String() }

// Set replaces the faults. They apply to the datagrams received from then
// on.
func (p *UDP) Set(f Faults) { p.st.set(f) }

// Partition drops every datagram both ways, those already held for delay
// included, until Heal.
func (p *UDP) Partition() { p.st.partition() }

// Heal ends the partition. The faults set by Set stay.
func (p *UDP) Heal() { p.st.heal() }

// Stats returns the counts so far.
func (p *UDP) Stats() Stats {
	return Stats{Forwarded: p.forwarded.Load(), Dropped: p.dropped.Load()}
}

// Close closes the listening socket and every client's socket, drops the
// held datagrams, and returns once every goroutine the proxy started has
// ended. It returns the listening socket's close error; later calls
// return nil.
func (p *UDP) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	clients := p.clients
	p.clients = nil
	p.mu.Unlock()
	var err error
	if first {
		close(p.done)
		err = p.ln.Close()
		for _, c := range clients {
			c.up.Close()
		}
	}
	p.wg.Wait()
	return err
}

// udpClient is one sender and the socket the proxy keeps for it.
type udpClient struct {
	addr netip.AddrPort
	up   *net.UDPConn // connected to the target: what arrives on it is for addr
}

// client returns the mapping for a sender, made on its first datagram; nil
// if the table is full or the proxy closed.
func (p *UDP) client(from netip.AddrPort) *udpClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[from]; ok || p.closed {
		return c
	}
	if len(p.clients) >= p.cfg.maxClients {
		return nil
	}
	up, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil
	}
	c := &udpClient{addr: from, up: up}
	p.clients[from] = c
	// Close waits for it: the proxy is not closed, and readClients, which
	// calls this, is still counted in wg.
	p.wg.Go(func() { p.readTarget(c) })
	return c
}

// readClients reads what the clients send to the proxy's address.
func (p *UDP) readClients() {
	buf := make([]byte, udpBufSize)
	var b backoff
	for {
		n, from, err := p.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !b.wait(p.done) {
				return
			}
			continue
		}
		b.reset()
		c := p.client(from)
		if c == nil {
			p.count(Upstream, true)
			continue
		}
		p.offer(Upstream, c, buf[:n])
	}
}

// readTarget reads the target's replies to one client.
func (p *UDP) readTarget(c *udpClient) {
	buf := make([]byte, udpBufSize)
	var b backoff
	for {
		n, err := c.up.Read(buf)
		if err != nil {
			// A send refused by the target (nothing listening there yet)
			// is reported by this read: it is not the end of the client.
			if errors.Is(err, net.ErrClosed) || !b.wait(p.done) {
				return
			}
			continue
		}
		b.reset()
		p.offer(Downstream, c, buf[:n])
	}
}

// offer decides a datagram's fate: dropped, sent now, or held for its
// delay. data is the reader's buffer: it is copied only when held. A
// datagram sent now costs no allocation; a held one costs its copy and
// the boxing of heap.Push and heap.Pop.
func (p *UDP) offer(d Direction, c *udpClient, data []byte) {
	hold, drop := p.st.fate(d)
	switch {
	case drop:
		p.count(d, true)
	case hold == 0:
		p.send(d, c, data)
	default:
		dg := datagram{at: time.Now().Add(hold), dir: d, c: c, data: bytes.Clone(data)}
		if !p.held.push(dg, p.cfg.maxHeld, p.cfg.maxHeldSize) {
			p.count(d, true)
		}
	}
}

// release sends the held datagrams, each at its own time.
func (p *UDP) release() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		dg, wake, ok := p.held.next(time.Now())
		if ok {
			p.send(dg.dir, dg.c, dg.data)
			continue
		}
		var fire <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			fire = timer.C
		}
		select {
		case <-fire:
		case <-p.held.ready:
		case <-p.done:
			return
		}
	}
}

func (p *UDP) send(d Direction, c *udpClient, data []byte) {
	if p.st.isPartitioned() {
		p.count(d, true)
		return
	}
	var err error
	if d == Upstream {
		_, err = c.up.Write(data)
	} else {
		_, err = p.ln.WriteToUDPAddrPort(data, c.addr)
	}
	p.count(d, err != nil)
}

func (p *UDP) count(d Direction, dropped bool) {
	if dropped {
		p.dropped.Add(1)
		p.cfg.trace(evDropped, d)
	} else {
		p.forwarded.Add(1)
		p.cfg.trace(evForwarded, d)
	}
}

// datagram is one held datagram and when it may go.
type datagram struct {
	at   time.Time
	seq  uint64 // breaks ties in arrival order
	dir  Direction
	c    *udpClient
	data []byte
}

// heldQueue is the datagrams held for delay, earliest first, bounded in
// count and bytes. Its methods are safe for concurrent use.
type heldQueue struct {
	mu    sync.Mutex
	dgs   datagramHeap
	size  int
	seq   uint64
	ready chan struct{} // cap 1: a datagram was pushed
}

// push holds dg, or reports false if that would pass either bound.
func (q *heldQueue) push(dg datagram, maxCount, maxSize int) bool {
	q.mu.Lock()
	if len(q.dgs) >= maxCount || q.size+len(dg.data) > maxSize {
		q.mu.Unlock()
		return false
	}
	dg.seq = q.seq
	q.seq++
	heap.Push(&q.dgs, dg)
	q.size += len(dg.data)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// next takes the earliest datagram if it is due at now; otherwise it
// returns when the earliest is due, or the zero time if none is held.
func (q *heldQueue) next(now time.Time) (datagram, time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.dgs) == 0 {
		return datagram{}, time.Time{}, false
	}
	if at := q.dgs[0].at; at.After(now) {
		return datagram{}, at, false
	}
	dg := heap.Pop(&q.dgs).(datagram)
	q.size -= len(dg.data)
	return dg, time.Time{}, true
}

// datagramHeap implements heap.Interface, earliest first.
type datagramHeap []datagram

func (h datagramHeap) Len() int { return len(h) }
func (h datagramHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h datagramHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *datagramHeap) Push(x any)   { *h = append(*h, x.(datagram)) }
func (h *datagramHeap) Pop() any {
	old := *h
	dg := old[len(old)-1]
	old[len(old)-1] = datagram{}
	*h = old[:len(old)-1]
	return dg
}
