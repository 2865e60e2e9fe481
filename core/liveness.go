package core

import "fmt"

// check runs every HeartbeatInterval while the peer is up: it declares
// the peer dead after PeerTimeout without a frame in, and queues a
// heartbeat when nothing went out since the last check. It only reads
// counters and queues a control frame, so a writer stuck on a peer that
// stopped reading cannot stop it: liveness does not need the data path.
func (p *peer) check() {
	e := p.env
	if r := p.recvd.Load(); r != p.lastRecvd {
		p.lastRecvd, p.quiet = r, 0
	} else {
		p.quiet += e.heartbeat
	}
	if p.quiet >= e.peerTimeout {
		p.close(fmt.Errorf("%w: nothing from %s for %v (Config.PeerTimeout)", ErrDisconnected, p.label(), p.quiet))
		return
	}
	if s := p.sent.Load(); s == p.lastSent {
		if frame, err := encodeFrame(&header{kind: kindBeat}, nil, e.maxMsg); err == nil {
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
