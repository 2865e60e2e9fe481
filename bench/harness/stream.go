package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"
)

// The Stream workload moves bulk data from client to server through one
// stream: a byte stream where the system has one (rpcenv's Stream, a TCP
// connection, a QUIC stream), a client stream of StreamChunk messages for
// gRPC. The server reads to the end, then answers with the byte count
// (answerSize bytes, big endian), so that the client knows every byte
// arrived. Like the stress workloads, a run moves a fixed amount
// (Stress.StreamBytes), and its failure is a result.

const (
	// streamWarm is how many bytes the untimed first stream of a setup
	// moves: it checks the count and lets pools and buffers fill before
	// the heap's base is taken.
	streamWarm = 1 << 20
	// streamHeapInterval is how often a stream run samples the heap:
	// more often than a slow-heap run, since a short run lasts only tens
	// of milliseconds. Reading one runtime/metrics sample does not stop
	// the world.
	streamHeapInterval = time.Millisecond
	// answerSize is the length of the server's answer: the byte count.
	answerSize = 8
)

// measureStream sets sys up for a stream run and makes it: one untimed
// stream of streamWarm bytes, then, after a collection, one stream of
// o.StreamBytes, timed from before the stream is opened to the server's
// answer, while another goroutine samples the heap. An unsupported
// workload returns an error wrapping errors.ErrUnsupported.
func measureStream(sys System, c Case, o Stress) (s sample, err error) {
	goroutines := runtime.NumGoroutine()
	st, err := sys.NewStreamer()
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err == nil {
			err = awaitGoroutines(goroutines)
		}
	}()
	chunk := payload(c.Payload)
	if err := guarded(st, o.Timeout, func() error { return streamChecked(st, chunk, streamWarm) }); err != nil {
		return s, fmt.Errorf("warm-up stream: %w", err)
	}

	runtime.GC()
	base := heapBytes()
	h := &heapSampler{base: base, peak: base, limit: math.MaxUint64, interval: streamHeapInterval,
		stop: make(chan struct{}), done: make(chan struct{})}
	go h.run() // stopped and waited for below

	start := time.Now()
	err = guarded(st, o.Timeout, func() error { return streamChecked(st, chunk, o.StreamBytes) })
	s.elapsed = time.Since(start)
	close(h.stop)
	<-h.done
	h.sample()
	if err != nil {
		return s, err
	}
	s.n = int(o.StreamBytes)
	s.heap = h.peak - h.base
	return s, nil
}

// streamChecked moves n bytes through a new stream of st and checks the
// server's count.
func streamChecked(st Streamer, chunk []byte, n int64) error {
	got, err := st.Stream(chunk, n)
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("the server counted %d bytes of %d", got, n)
	}
	return nil
}

// writeN writes n bytes to w in writes of chunk, the last one cut short.
// It is what io.Copy from a reader of n patterned bytes does, without
// the copy into io.Copy's buffer.
func writeN(w io.Writer, chunk []byte, n int64) error {
	for sent := int64(0); sent < n; {
		p := chunk[:min(int64(len(chunk)), n-sent)]
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("write at byte %d of %d: %w", sent, n, err)
		}
		sent += int64(len(p))
	}
	return nil
}

// drain reads r to its end and returns how many bytes it read. It is
// io.Copy to io.Discard with reads as large as the client's writes
// (io.Discard would read 8 KiB at a time).
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, StreamChunk)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read after %d bytes: %w", n, err)
		}
	}
}

// sinkStream is the server's side of a stream: it reads rw to its end
// and answers with the count. The caller then closes the stream.
func sinkStream(rw io.ReadWriter) error {
	n, err := drain(rw)
	if err != nil {
		return err
	}
	if _, err := rw.Write(binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
		return fmt.Errorf("write the answer: %w", err)
	}
	return nil
}

// readAnswer reads the server's answer, up to the end of the stream, and
// returns the count it carries.
func readAnswer(r io.Reader) (int64, error) {
	var b [answerSize + 1]byte // one more, to see the end
	n, err := io.ReadFull(r, b[:])
	switch {
	case n == answerSize && errors.Is(err, io.ErrUnexpectedEOF):
		return int64(binary.BigEndian.Uint64(b[:])), nil
	case err == nil:
		return 0, fmt.Errorf("the answer is longer than %d bytes", answerSize)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return 0, fmt.Errorf("the answer has %d bytes, want %d", n, answerSize)
	default:
		return 0, fmt.Errorf("read the answer: %w", err)
	}
}
