package rpcotel

import (
	"context"
	"errors"
	"math"
	"sync"

	"github.com/rpcenv/rpcenv/core"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// The names of Observe's instruments.
const (
	// MetricInboxSize is a gauge: what waits in an endpoint's inbox now
	// (core.EndpointStats.Queued: messages, and lifecycle and network
	// calls), per endpoint.
	MetricInboxSize = "rpcenv.endpoint.inbox.size"
	// MetricHandled counts the messages an endpoint has handled
	// (core.EndpointStats.Handled), per endpoint.
	MetricHandled = "rpcenv.endpoint.messages.handled"
	// MetricFailed counts those of them that failed
	// (core.EndpointStats.Failed), per endpoint.
	MetricFailed = "rpcenv.endpoint.messages.failed"
	// MetricDeadLetters counts the messages the env dropped
	// (core.Env.DeadLetters).
	MetricDeadLetters = "rpcenv.dead_letters"
	// MetricConnectionsUp counts the connections whose handshake
	// completed, in either direction.
	MetricConnectionsUp = "rpcenv.connections.up"
	// MetricConnectionsLost counts those of them that ended before the
	// env's shutdown began.
	MetricConnectionsLost = "rpcenv.connections.lost"
	// MetricConnectionsRefused counts the connections refused at the
	// handshake.
	MetricConnectionsRefused = "rpcenv.connections.refused"
	// MetricConnectionIO counts the bytes of the frames the env's
	// connections read (network.io.direction "receive") and wrote
	// ("transmit"), before encryption; stream data on QUIC's own streams
	// is left out, and counted by MetricStreamIO.
	MetricConnectionIO = "rpcenv.connection.io"
	// MetricStreamIO counts the bytes read from the env's streams
	// (network.io.direction "receive") and written to them ("transmit").
	MetricStreamIO = "rpcenv.stream.io"
)

// The attributes of Observe's instruments.
const (
	// AttrEnvName is the observed env's name (core.Config.Name), on
	// every instrument of Observe.
	AttrEnvName = attribute.Key("rpcenv.env.name")
	// AttrEndpointName is an endpoint's name, on the per-endpoint
	// instruments.
	AttrEndpointName = attribute.Key("rpcenv.endpoint.name")
)

// Observe reports env's own counters (core.Env.Stats) through observable
// instruments of a meter from the meter provider (WithMeterProvider; the
// global one by default), read in one callback each time a reader
// collects:
//
//	rpcenv.endpoint.inbox.size        gauge    {message}     per endpoint
//	rpcenv.endpoint.messages.handled  counter  {message}     per endpoint
//	rpcenv.endpoint.messages.failed   counter  {message}     per endpoint
//	rpcenv.dead_letters               counter  {message}
//	rpcenv.connections.up             counter  {connection}
//	rpcenv.connections.lost           counter  {connection}
//	rpcenv.connections.refused        counter  {connection}
//	rpcenv.connection.io              counter  By            per network.io.direction
//	rpcenv.stream.io                  counter  By            per network.io.direction
//
// Every value has the attribute rpcenv.env.name (core.Config.Name): give
// envs that share a meter provider different names. The per-endpoint
// ones also have rpcenv.endpoint.name. An endpoint's counters count from
// its registration: an endpoint stopped and registered again under its
// name starts again from zero, which readers take as a counter reset.
// The endpoint counters are added once per batch of messages that a
// worker takes, and may lag by the batch in progress (core.EndpointStats).
//
// rpcenv.connection.io adds up the connections' own counters, which
// vanish when a connection closes. Observe keeps it monotonic: it
// remembers each peer's last counts (by env id and remote address) and
// keeps those of a peer that is gone, or whose counts went down because
// a new connection replaced the old. What a connection carried after the
// last collection before it closed is not counted.
//
// stop unregisters the callback; it may be called more than once, and
// returns the error of the first call. Until then, an env that was shut
// down goes on reporting its env-wide counters, final (its endpoints are
// gone, and with them their values).
func Observe(env *core.Env, opts ...Option) (stop func() error, err error) {
	if env == nil {
		return nil, errors.New("rpcotel: Observe: nil env")
	}
	c := newConfig(opts)
	m := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	o := &observer{env: env, env1: AttrEnvName.String(env.Name())}
	o.envSet = metric.WithAttributeSet(attribute.NewSet(o.env1))
	o.receive = metric.WithAttributeSet(attribute.NewSet(o.env1, semconv.NetworkIODirectionReceive))
	o.transmit = metric.WithAttributeSet(attribute.NewSet(o.env1, semconv.NetworkIODirectionTransmit))

	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.inbox = gauge(MetricInboxSize, "{message}", "What waits in the endpoint's inbox: messages, and lifecycle and network calls.")
	o.handled = counter(MetricHandled, "{message}", "Messages the endpoint handled.")
	o.failed = counter(MetricFailed, "{message}", "Messages the endpoint handled that failed: undecodable, or the handler returned an error or panicked.")
	o.deadLetters = counter(MetricDeadLetters, "{message}", "Messages the env dropped.")
	o.connsUp = counter(MetricConnectionsUp, "{connection}", "Connections whose handshake completed, either direction.")
	o.connsLost = counter(MetricConnectionsLost, "{connection}", "Connections that ended before the env's shutdown began.")
	o.refused = counter(MetricConnectionsRefused, "{connection}", "Connections refused at the handshake.")
	o.connIO = counter(MetricConnectionIO, "By", "Frame bytes the env's connections read and wrote, before encryption.")
	o.streamIO = counter(MetricStreamIO, "By", "Bytes read from and written to the env's streams.")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(o.observe,
		o.inbox, o.handled, o.failed, o.deadLetters, o.connsUp, o.connsLost, o.refused, o.connIO, o.streamIO)
	if err != nil {
		return nil, err
	}
	var (
		once    sync.Once
		stopErr error
	)
	return func() error {
		once.Do(func() { stopErr = reg.Unregister() })
		return stopErr
	}, nil
}

type observer struct {
	env                       *core.Env
	env1                      attribute.KeyValue
	envSet, receive, transmit metric.MeasurementOption

	inbox                                                                       metric.Int64ObservableGauge
	handled, failed, deadLetters, connsUp, connsLost, refused, connIO, streamIO metric.Int64ObservableCounter

	bytes byteTotals
}

func (o *observer) observe(_ context.Context, ob metric.Observer) error {
	s := o.env.Stats()
	for _, ep := range s.Endpoints {
		set := metric.WithAttributeSet(attribute.NewSet(o.env1, AttrEndpointName.String(ep.Name)))
		ob.ObserveInt64(o.inbox, int64(ep.Queued), set)
		ob.ObserveInt64(o.handled, clamp(ep.Handled), set)
		ob.ObserveInt64(o.failed, clamp(ep.Failed), set)
	}
	ob.ObserveInt64(o.deadLetters, clamp(s.DeadLetters), o.envSet)
	ob.ObserveInt64(o.connsUp, clamp(s.ConnectionsUp), o.envSet)
	ob.ObserveInt64(o.connsLost, clamp(s.ConnectionsLost), o.envSet)
	ob.ObserveInt64(o.refused, clamp(s.RefusedConnections), o.envSet)
	in, out := o.bytes.update(s.Peers)
	ob.ObserveInt64(o.connIO, clamp(in), o.receive)
	ob.ObserveInt64(o.connIO, clamp(out), o.transmit)
	ob.ObserveInt64(o.streamIO, clamp(s.StreamBytesIn), o.receive)
	ob.ObserveInt64(o.streamIO, clamp(s.StreamBytesOut), o.transmit)
	return nil
}

// clamp converts a counter to the int64 instruments take.
func clamp(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

// byteTotals keeps the sum of the connections' byte counters monotonic
// while connections come and go. Its mutex serializes collections by
// several readers.
type byteTotals struct {
	mu   sync.Mutex
	gone [2]uint64             // in, out: what the connections no longer listed had counted
	last map[peerKey][2]uint64 // each listed peer's counts at the last update
}

// peerKey tells peers apart: their env's id, and the address, since a
// client-mode peer's id may come back over another connection.
type peerKey struct{ envID, remote string }

// update returns the total bytes in and out, given the connections listed
// now.
func (b *byteTotals) update(peers []core.PeerStats) (in, out uint64) {
	cur := make(map[peerKey][2]uint64, len(peers))
	for _, p := range peers {
		k := peerKey{p.EnvID, p.Remote}
		v := cur[k]
		cur[k] = [2]uint64{v[0] + p.BytesIn, v[1] + p.BytesOut}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, old := range b.last {
		if now, ok := cur[k]; !ok || now[0] < old[0] || now[1] < old[1] {
			// Gone, or a new connection's counts replaced the old one's.
			b.gone[0] += old[0]
			b.gone[1] += old[1]
		}
	}
	b.last = cur
	in, out = b.gone[0], b.gone[1]
	for _, v := range cur {
		in += v[0]
		out += v[1]
	}
	return in, out
}
