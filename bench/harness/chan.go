package harness

import (
	"errors"
	"fmt"
	"sync"
)

// chanSystem is the floor for one process: Go channels, no encoding.
type chanSystem struct{}

func (chanSystem) Name() string { return "chan" }
func (chanSystem) Group() Group { return GroupFloor }

// chanRequest is an ask: the payload and the caller's reply channel.
type chanRequest struct {
	data  []byte
	reply chan []byte
}

// chanAsker is callers sharing one request channel, served by one
// goroutine that echoes.
type chanAsker struct {
	requests chan chanRequest
	stop     chan struct{} // closed by Close
	wg       sync.WaitGroup
	callers  []AskFunc
	once     sync.Once
}

var errClosed = errors.New("closed")

func (chanSystem) NewAsker(callers int) (Asker, error) {
	a := &chanAsker{requests: make(chan chanRequest), stop: make(chan struct{})}
	a.wg.Go(func() {
		for {
			r, ok := recv(a.requests, a.stop)
			if !ok {
				return
			}
			r.reply <- r.data
		}
	})
	for range callers {
		reply := make(chan []byte, 1)
		a.callers = append(a.callers, func(req []byte) ([]byte, error) {
			if !send(a.requests, chanRequest{req, reply}, a.stop) {
				return nil, errClosed
			}
			return <-reply, nil // the server replies to every request it took
		})
	}
	return a, nil
}

func (a *chanAsker) Callers() []AskFunc { return a.callers }

func (a *chanAsker) Close() error {
	a.once.Do(func() {
		close(a.stop)
		a.wg.Wait()
	})
	return nil
}

// chanSender sends on a buffered channel drained and counted by one
// goroutine (or, for slow-heap, drained by a goroutine that calls its
// function for each message).
type chanSender struct {
	ch    chan []byte
	count *counter      // nil for slow-heap
	stop  chan struct{} // closed by Close
	wg    sync.WaitGroup
	once  sync.Once
}

func (chanSystem) NewSender() (Sender, error) {
	c := new(counter)
	s := newChanSender(c.add)
	s.count = c
	return s, nil
}

// newChanSender starts a goroutine that calls receive for each message.
func newChanSender(receive func()) *chanSender {
	s := &chanSender{ch: make(chan []byte, 1024), stop: make(chan struct{})}
	s.wg.Go(func() {
		for {
			if _, ok := recv(s.ch, s.stop); !ok {
				return
			}
			receive()
		}
	})
	return s
}

func (s *chanSender) SendN(msg []byte, n int) error {
	done := s.count.expect(n)
	for range n {
		if !send(s.ch, msg, s.stop) {
			return errClosed
		}
	}
	return s.count.await(done, s.stop)
}

// Send sends one message, waiting while the channel's buffer is full.
func (s *chanSender) Send(msg []byte) error {
	if !send(s.ch, msg, s.stop) {
		return errClosed
	}
	return nil
}

func (s *chanSender) Close() error {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
	return nil
}

// send sends v on ch unless stop is closed first. It tries a plain send
// before a select with stop, so that the floor costs what a channel send
// costs.
func send[T any](ch chan<- T, v T, stop <-chan struct{}) bool {
	select {
	case ch <- v:
		return true
	default:
	}
	select {
	case ch <- v:
		return true
	case <-stop:
		return false
	}
}

// recv receives from ch unless stop is closed first, trying a plain
// receive first as send does.
func recv[T any](ch <-chan T, stop <-chan struct{}) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
	}
	select {
	case v := <-ch:
		return v, true
	case <-stop:
		var zero T
		return zero, false
	}
}

func (s chanSystem) NewBulkAsker(func()) (BulkAsker, error) {
	return nil, fmt.Errorf("%s: asks during bulk sends: %w (channels in one process have no connection to share)", s.Name(), errors.ErrUnsupported)
}

func (chanSystem) NewSlowSender(receive func()) (SlowSender, error) {
	return newChanSender(receive), nil
}

func (s chanSystem) NewStreamer() (Streamer, error) {
	return nil, fmt.Errorf("%s: streams: %w (channels hand slices over without copying: a byte stream over them would measure channel operations, not moving bytes)", s.Name(), errors.ErrUnsupported)
}
