package core

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"
)

// hello is the handshake frame's body: who the sender is, a fresh nonce,
// and (from the listener) its proof of the secret.
type hello struct {
	_       struct{} `cbor:",toarray"`
	Version int
	EnvID   string
	EnvName string
	Addr    string // advertised URI; "" for a client-mode env
	Nonce   []byte
	Auth    bool   // the sender has a secret and requires a proof
	Proof   []byte // listener only: HMAC(secret, "rpcenv listener" ...)
	Seal    bool   // the sender seals the frames after the handshake (seal.go)
}

const nonceSize = 32

// Handshake frames are small; a peer that is not yet authenticated may
// not make the env decode more than this.
const maxHandshakeFrame = 4096

// proof is HMAC-SHA256(secret, role || dialer nonce || listener nonce ||
// dialer id || listener id || channel binding): bound to both nonces, both
// envs, the direction and the TLS session if any, so neither side's proof
// can be replayed, reflected, or relayed through a TLS terminator.
func proof(secret []byte, role string, dn, ln []byte, did, lid string, cb []byte) []byte {
	m := hmac.New(sha256.New, secret)
	for _, part := range [][]byte{[]byte(role), dn, ln, []byte(did), []byte(lid), cb} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		m.Write(n[:])
		m.Write(part)
	}
	return m.Sum(nil)
}

// handshake runs the connection handshake (docs/PROTOCOL.md) on conn and
// fills in p's remote identity. It gives up when ctx is done, by closing
// conn, so a silent peer cannot hold the goroutine.
func (e *Env) handshake(ctx context.Context, p *peer, conn Conn, dialer bool) error {
	p.conn = conn
	p.connAddr = p.scheme + "://" + conn.RemoteAddr()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var err error
	if dialer {
		err = e.handshakeDial(p, conn)
	} else {
		err = e.handshakeAccept(p, conn)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: handshake with %s did not finish in time", ErrDisconnected, p.connAddr)
	}
	return err
}

func (e *Env) myHello() hello {
	n := make([]byte, nonceSize)
	rand.Read(n)
	return hello{Version: protocolVersion, EnvID: e.id, EnvName: e.name, Addr: e.addr, Nonce: n, Auth: len(e.secret) > 0}
}

func (e *Env) handshakeDial(p *peer, conn Conn) error {
	mine := e.myHello()
	var cb []byte
	if mine.Auth {
		var err error
		if cb, err = channelBinding(conn); err != nil {
			return err
		}
		mine.Seal = e.sealsWithout(cb)
	}
	if err := writeControl(conn, kindHello, mine); err != nil {
		return err
	}
	var theirs hello
	if err := readControl(conn, kindHello, &theirs); err != nil {
		return err
	}
	if err := e.checkHello(&theirs); err != nil {
		return err
	}
	if theirs.Auth != mine.Auth {
		return authMismatch(theirs.Auth)
	}
	if mine.Auth {
		if theirs.Seal != mine.Seal {
			return sealMismatch(theirs.Seal)
		}
		want := proof(e.secret, "rpcenv listener", mine.Nonce, theirs.Nonce, mine.EnvID, theirs.EnvID, cb)
		if !hmac.Equal(want, theirs.Proof) {
			return fmt.Errorf("%w: %s did not prove the shared secret (%s)", ErrUnauthenticated, p.connAddr, whyNoProof)
		}
		mp := proof(e.secret, "rpcenv dialer", mine.Nonce, theirs.Nonce, mine.EnvID, theirs.EnvID, cb)
		if err := writeControl(conn, kindProof, mp); err != nil {
			return err
		}
		var ok bool
		if err := readControl(conn, kindReady, &ok); err != nil {
			return err
		}
		if mine.Seal {
			if err := e.seal(p, conn, mine.Nonce, theirs.Nonce, mine.EnvID, theirs.EnvID, true); err != nil {
				return err
			}
		}
	}
	p.setRemote(&theirs)
	return nil
}

func (e *Env) handshakeAccept(p *peer, conn Conn) error {
	var theirs hello
	if err := readControl(conn, kindHello, &theirs); err != nil {
		return err
	}
	if err := e.checkHello(&theirs); err != nil {
		reject(conn, err)
		return err
	}
	mine := e.myHello()
	if theirs.Auth != mine.Auth {
		err := authMismatch(theirs.Auth)
		reject(conn, err)
		return err
	}
	var cb []byte
	if mine.Auth {
		var err error
		if cb, err = channelBinding(conn); err != nil {
			reject(conn, err)
			return err
		}
		mine.Seal = e.sealsWithout(cb)
		if theirs.Seal != mine.Seal {
			err := sealMismatch(theirs.Seal)
			reject(conn, err)
			return err
		}
		mine.Proof = proof(e.secret, "rpcenv listener", theirs.Nonce, mine.Nonce, theirs.EnvID, mine.EnvID, cb)
	}
	if err := writeControl(conn, kindHello, mine); err != nil {
		return err
	}
	if mine.Auth {
		var got []byte
		if err := readControl(conn, kindProof, &got); err != nil {
			return err
		}
		want := proof(e.secret, "rpcenv dialer", theirs.Nonce, mine.Nonce, theirs.EnvID, mine.EnvID, cb)
		if !hmac.Equal(want, got) {
			err := fmt.Errorf("%w: %s did not prove the shared secret (%s)", ErrUnauthenticated, p.connAddr, whyNoProof)
			reject(conn, err)
			return err
		}
		if err := writeControl(conn, kindReady, true); err != nil {
			return err
		}
		if mine.Seal {
			if err := e.seal(p, conn, theirs.Nonce, mine.Nonce, theirs.EnvID, mine.EnvID, false); err != nil {
				return err
			}
		}
	}
	p.setRemote(&theirs)
	return nil
}

// sealsWithout reports whether this env seals a connection whose TLS
// channel binding is cb: it has a secret (the caller checked), the
// connection has no TLS, and Config.InsecurePlaintext is not set.
func (e *Env) sealsWithout(cb []byte) bool {
	return cb == nil && !e.plaintext
}

// seal makes p's connection seal its frames from now on (seal.go), with
// the keys of the dialer's side or the listener's.
func (e *Env) seal(p *peer, conn Conn, nonceD, nonceL []byte, idD, idL string, dialer bool) error {
	dl, ld, err := sealKeys(e.secret, nonceD, nonceL, idD, idL)
	if err != nil {
		return err
	}
	out, in := ld, dl
	if dialer {
		out, in = dl, ld
	}
	sc, err := newSealedConn(conn, out, in)
	if err != nil {
		return err
	}
	p.conn = sc
	return nil
}

func sealMismatch(theirSeal bool) error {
	if theirSeal {
		return fmt.Errorf("%w: the peer encrypts its frames and this env sends them in plain text (Config.InsecurePlaintext differs)", ErrUnauthenticated)
	}
	return fmt.Errorf("%w: this env encrypts its frames and the peer sends them in plain text (Config.InsecurePlaintext differs)", ErrUnauthenticated)
}

// whyNoProof says why a proof can be wrong.
const whyNoProof = "Config.Secret differs, or the TLS session is not end to end: something between the envs terminates TLS"

// channelBinding returns conn's TLS channel binding (BoundConn), or nil
// for a connection without TLS.
func channelBinding(conn Conn) ([]byte, error) {
	b, ok := conn.(BoundConn)
	if !ok {
		return nil, nil
	}
	cb, err := b.ChannelBinding()
	if err != nil {
		return nil, fmt.Errorf("%w: handshake: the TLS channel binding: %v", ErrDisconnected, err)
	}
	return cb, nil
}

func authMismatch(theirAuth bool) error {
	if theirAuth {
		return fmt.Errorf("%w: the peer requires a shared secret and this env has none (Config.Secret)", ErrUnauthenticated)
	}
	return fmt.Errorf("%w: this env requires a shared secret and the peer has none (Config.Secret)", ErrUnauthenticated)
}

func (e *Env) checkHello(h *hello) error {
	switch {
	case h.Version != protocolVersion:
		return fmt.Errorf("%w: peer speaks protocol version %d, this env %d", ErrProtocol, h.Version, protocolVersion)
	case h.EnvID == "" || len(h.EnvID) > 64:
		return fmt.Errorf("%w: hello without a valid env id", ErrProtocol)
	case h.EnvID == e.id:
		return fmt.Errorf("%w: the env connected to itself", ErrProtocol)
	case len(h.Nonce) != nonceSize:
		return fmt.Errorf("%w: hello nonce must be %d bytes", ErrProtocol, nonceSize)
	}
	if h.Addr != "" {
		if _, _, name, err := parseURI(h.Addr); err != nil || name != "" {
			return fmt.Errorf("%w: hello with a malformed address %q", ErrProtocol, h.Addr)
		}
	}
	return nil
}

func (p *peer) setRemote(h *hello) {
	p.remoteID, p.remoteName, p.remoteAddr = h.EnvID, h.EnvName, h.Addr
}

// reject tells the peer why its connection is refused, best effort.
func reject(conn Conn, err error) {
	if frame, ferr := encodeFrame(&header{kind: kindReject, code: codeOf(err), message: err.Error()}, nil, maxHandshakeFrame); ferr == nil {
		conn.WriteFrames([][]byte{frame})
	}
}

func writeControl(conn Conn, kind uint8, body any) error {
	frame, err := encodeFrame(&header{kind: kind, typ: "rpcenv.control"}, body, maxHandshakeFrame)
	if err != nil {
		return err
	}
	if err := conn.WriteFrames([][]byte{frame}); err != nil {
		return fmt.Errorf("%w: handshake: %v", ErrDisconnected, err)
	}
	return nil
}

// readControl reads the next handshake frame, which must be of kind want
// (or a Reject, turned into its error).
func readControl(conn Conn, want uint8, body any) error {
	frame, err := conn.ReadFrame()
	if err != nil {
		return fmt.Errorf("%w: handshake: %v", ErrDisconnected, err)
	}
	if len(frame) > maxHandshakeFrame {
		return fmt.Errorf("%w: handshake frame of %d bytes (at most %d)", ErrProtocol, len(frame), maxHandshakeFrame)
	}
	var env envelope
	if err := decodeEnvelope(frame, &env); err != nil {
		return err
	}
	if env.Kind == kindReject {
		if s := sentinelOf(env.Code); s != nil {
			return fmt.Errorf("%w: refused by peer: %s", s, env.Message)
		}
		return fmt.Errorf("%w: refused by peer: %s", ErrDisconnected, env.Message)
	}
	if env.Kind != want {
		return fmt.Errorf("%w: handshake expected frame kind %d, got %d", ErrProtocol, want, env.Kind)
	}
	if err := decMode.Unmarshal(env.Body, body); err != nil {
		return fmt.Errorf("%w: handshake: %v", ErrProtocol, err)
	}
	return nil
}

func timeNow() time.Time { return time.Now() }

// durationOf turns an ask's wire timeout (ns) into a duration, keeping a
// hostile value from overflowing a deadline.
func durationOf(ns int64) time.Duration {
	const most = 24 * time.Hour * 365
	if ns <= 0 {
		return 0
	}
	if ns > int64(most) {
		return most
	}
	return time.Duration(ns)
}
