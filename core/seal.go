package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
)

// Sealing: with Config.Secret set, a connection without TLS carries every
// frame after the handshake encrypted and authenticated with AES-256-GCM,
// under keys derived from the secret and both handshake nonces, one per
// direction, with the frame's number in its direction as the nonce
// (docs/PROTOCOL.md, "Sealed frames"). A tampered, replayed, reordered,
// dropped or truncated frame fails to open, and the connection closes
// before anything of it is used.

// sealOverhead is what sealing adds to a frame: GCM's tag.
const sealOverhead = 16

// sealKeys derives the two directions' keys of a connection:
//
//	key(direction) = HKDF-SHA256(secret, salt = nonceD | nonceL,
//	                             info = "rpcenv/2 seal " + direction + " " + idD + " " + idL)
//
// with direction "dialer to listener" or "listener to dialer".
func sealKeys(secret, nonceD, nonceL []byte, idD, idL string) (dialerToListener, listenerToDialer []byte, err error) {
	salt := append(append(make([]byte, 0, len(nonceD)+len(nonceL)), nonceD...), nonceL...)
	key := func(direction string) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, salt, "rpcenv/2 seal "+direction+" "+idD+" "+idL, 32)
	}
	if dialerToListener, err = key("dialer to listener"); err != nil {
		return nil, nil, err
	}
	if listenerToDialer, err = key("listener to dialer"); err != nil {
		return nil, nil, err
	}
	return dialerToListener, listenerToDialer, nil
}

// sealer is one direction of a sealed connection: its AEAD and the
// number of the next frame.
type sealer struct {
	aead  cipher.AEAD
	n     uint64
	nonce [12]byte
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// next returns the nonce of the next frame: 4 zero bytes, then the
// frame's number in 8 bytes, big-endian.
func (s *sealer) next() []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], s.n)
	s.n++
	return s.nonce[:]
}

// sealedConn is a Conn whose frames are sealed. WriteFrames is called by
// one goroutine at a time (the handshake, then the connection's writer),
// and so is ReadFrame (the handshake, then the read loop), as Conn says.
type sealedConn struct {
	Conn
	out, in *sealer
	sealed  [][]byte // WriteFrames' sealed frames, reused
}

// newSealedConn seals conn's frames with the keys of this side: out for
// what it writes, in for what it reads.
func newSealedConn(conn Conn, out, in []byte) (Conn, error) {
	so, err := newSealer(out)
	if err != nil {
		return nil, err
	}
	si, err := newSealer(in)
	if err != nil {
		return nil, err
	}
	sc := &sealedConn{Conn: conn, out: so, in: si}
	if _, ok := conn.(BufferedConn); ok {
		return &bufferedSealedConn{sc}, nil
	}
	return sc, nil
}

// sealArenas recycles the buffers WriteFrames seals frames into: one per
// call, shared by all connections, so that an idle connection holds none.
var sealArenas = sync.Pool{New: func() any { return new([]byte) }}

// maxSealArena is the largest arena kept for reuse (a batch is about
// batchBytes, and one frame at most maxFrame more).
const maxSealArena = 1 << 20

// WriteFrames seals the frames, back to back in one recycled buffer, and
// writes them. The transport is done with them when it returns (Conn).
func (c *sealedConn) WriteFrames(frames [][]byte) error {
	total := 0
	for _, f := range frames {
		total += len(f) + sealOverhead
	}
	ap := sealArenas.Get().(*[]byte)
	arena := (*ap)[:0]
	if cap(arena) < total {
		arena = make([]byte, 0, total)
	}
	sealed := c.sealed[:0]
	for _, f := range frames {
		at := len(arena)
		arena = c.out.aead.Seal(arena, c.out.next(), f, nil)
		sealed = append(sealed, arena[at:len(arena):len(arena)])
	}
	err := c.Conn.WriteFrames(sealed)
	clear(sealed)
	c.sealed = sealed[:0]
	if cap(arena) <= maxSealArena {
		*ap = arena[:0]
		sealArenas.Put(ap)
	}
	return err
}

// ReadFrame reads the next frame and opens it in place. A frame that does
// not open is a protocol violation: the read loop closes the connection.
func (c *sealedConn) ReadFrame() ([]byte, error) {
	f, err := c.Conn.ReadFrame()
	if err != nil {
		return nil, err
	}
	if len(f) < sealOverhead {
		return nil, fmt.Errorf("%w: a sealed frame of %d bytes, shorter than its tag", ErrProtocol, len(f))
	}
	n := c.in.n
	p, err := c.in.aead.Open(f[:0], c.in.next(), f, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed frame %d does not open: it was altered, replayed, reordered or cut, or the peer's keys differ", ErrProtocol, n)
	}
	return p, nil
}

// bufferedSealedConn keeps the transport's BufferedConn. Buffered counts
// sealed bytes, which is what the read loop needs: whether ReadFrame may
// wait.
type bufferedSealedConn struct{ *sealedConn }

func (c *bufferedSealedConn) Buffered() int { return c.sealedConn.Conn.(BufferedConn).Buffered() }
