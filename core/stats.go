package core

import (
	"slices"
	"strings"
	"time"
)

// Stats is a snapshot of an env's counters, for monitoring (Env.Stats).
// Counters count from the env's creation.
type Stats struct {
	Name    string // Config.Name
	Address string // the env's advertised URI; "" in client mode

	DeadLetters        uint64 // messages the env dropped (Env.DeadLetters)
	RefusedConnections uint64 // handshakes refused (Env.RefusedConnections)
	ConnectionsUp      uint64 // connections whose handshake completed, either direction
	ConnectionsLost    uint64 // of those, the ones that ended before Shutdown began
	StreamBytesIn      uint64 // bytes read from the env's streams (Stream.Read)
	StreamBytesOut     uint64 // bytes written to them (Stream.Write)

	Endpoints []EndpointStats // the registered endpoints, by name
	Peers     []PeerStats     // the connections up now, by Remote
}

// EndpointStats describes one endpoint in a Stats.
type EndpointStats struct {
	Name string
	// Queued is what waits in the inbox now: messages, and lifecycle and
	// network calls.
	Queued int
	// Handled counts the messages delivered to the endpoint and done
	// with (Receive or ReceiveStream returned), and those that could not
	// be decoded; Failed counts those of them that failed: undecodable,
	// or the handler returned an error or panicked. Both are added once
	// per batch a worker takes, so they may lag by the batch in progress.
	Handled, Failed uint64
}

// PeerStats describes one connection in a Stats.
type PeerStats struct {
	Remote  string // the peer env's advertised URI, or for a client-mode peer the connection's remote address
	EnvID   string // the peer env's id
	EnvName string // the peer env's Config.Name
	// Closing is true once the connection has begun to close.
	Closing bool
	// BytesIn and BytesOut count the frame bytes read and written (with
	// TLS or sealing, before encryption), stream data on QUIC's own
	// streams excepted.
	BytesIn, BytesOut uint64
	// LastHeard is when the env last saw frames arrive: at its handshake,
	// then at each heartbeat check (Config.HeartbeatInterval) that found
	// new ones.
	LastHeard time.Time
}

// Stats returns a snapshot of the env's counters, its endpoints and its
// connections. It takes each endpoint's lock briefly and the connection
// table's once, and is meant to be called every few seconds at most,
// not per message.
func (e *Env) Stats() Stats {
	s := Stats{
		Name:               e.name,
		Address:            e.addr,
		DeadLetters:        e.deadLetters.Load(),
		RefusedConnections: e.refused.Load(),
		ConnectionsUp:      e.connsUp.Load(),
		ConnectionsLost:    e.connsLost.Load(),
		StreamBytesIn:      e.streamBytes.in.Load(),
		StreamBytesOut:     e.streamBytes.out.Load(),
	}
	e.endpoints.Range(func(_, v any) bool {
		x := v.(*endpoint)
		x.mu.Lock()
		queued := x.q.n
		x.mu.Unlock()
		s.Endpoints = append(s.Endpoints, EndpointStats{Name: x.name, Queued: queued, Handled: x.handled.Load(), Failed: x.failed.Load()})
		return true
	})
	slices.SortFunc(s.Endpoints, func(a, b EndpointStats) int { return strings.Compare(a.Name, b.Name) })

	t := &e.peers
	t.mu.Lock()
	peers := make([]*peer, 0, len(t.all))
	for p := range t.all {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	for _, p := range peers {
		ps := PeerStats{Remote: p.label(), EnvID: p.remoteID, EnvName: p.remoteName, Closing: p.isClosed(), BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load()}
		if ns := p.heard.Load(); ns != 0 {
			ps.LastHeard = time.Unix(0, ns)
		}
		s.Peers = append(s.Peers, ps)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStats) int {
		if c := strings.Compare(a.Remote, b.Remote); c != 0 {
			return c
		}
		return strings.Compare(a.EnvID, b.EnvID)
	})
	return s
}
