package core

import (
	"fmt"
	"time"
)

// beatPadding fills a Heartbeat's message field, which receivers ignore
// (docs/PROTOCOL.md): without it the packet carrying a lone heartbeat
// over QUIC is 40 bytes, and a restarted QUIC listener answers only
// packets over 42 bytes with a stateless reset (RFC 9000, section 10.3),
// so an idle connection to a restarted peer would be noticed only at
// PeerTimeout instead of at its next heartbeat.
const beatPadding = "rpcenv.."

// check runs every HeartbeatInterval while the peer is up: it declares
// the peer dead after PeerTimeout without a frame in, and queues a
// heartbeat when nothing went out since the last check. It only reads
// counters and queues a control frame, so a writer stuck on a peer that
// stopped reading cannot stop it: liveness does not need the data path.
func (p *peer) check() {
	e := p.env
	if r := p.recvd.Load(); r != p.lastRecvd {
		p.lastRecvd, p.quiet = r, 0
		p.heard.Store(time.Now().UnixNano())
	} else {
		p.quiet += e.heartbeat
	}
	if p.quiet >= e.peerTimeout {
		p.close(fmt.Errorf("%w: nothing from %s for %v (Config.PeerTimeout)", ErrDisconnected, p.label(), p.quiet))
		return
	}
	if s := p.sent.Load(); s == p.lastSent {
		if frame, err := encodeFrame(&header{kind: kindBeat, message: beatPadding}, nil, e.maxMsg); err == nil {
			p.control(frame)
		}
	} else {
		p.lastSent = s
	}
	p.mu.Lock()
	if p.state == peerUp {
		p.beat.Reset(e.heartbeat)
	}
	p.mu.Unlock()
}
