// Package rpcotel traces and measures rpcenv with OpenTelemetry.
//
// It owns two things: the interceptors that give every Send, Ask and
// OpenStream a client span and every delivery a server span, carry the
// W3C trace context between envs in the messages' headers, and record
// the durations that OpenTelemetry's RPC semantic conventions define
// (rpc.client.call.duration and rpc.server.call.duration); and Observe,
// which reports an env's own counters (inboxes, dead letters,
// connections, bytes) as observable instruments. It sets up no SDK and
// no exporter: that is the program's, through the providers it passes
// (or the global ones).
//
// Instrument an env's config before creating it:
//
//	cfg := core.Config{Name: "driver", Listen: "tcp://0.0.0.0:7077", Transports: []core.Transport{tcp.New(tcp.Options{})}}
//	rpcotel.Instrument(&cfg, rpcotel.WithTracerProvider(tp), rpcotel.WithMeterProvider(mp))
//	env, err := core.NewEnv(cfg)
//	if err != nil { … }
//	stop, err := rpcotel.Observe(env, rpcotel.WithMeterProvider(mp))
//	if err != nil { … }
//	defer stop()
//
// A handler continues the trace of the message it handles by making its
// own calls with its Context's context:
//
//	func (w *worker) Receive(c *core.Context, msg any) error {
//		reply, err := w.store.Ask(c.Context(), Get{Key: msg.(Fetch).Key}) // a child of the delivery's span
//		…
//	}
//
// Both ends must be instrumented for a trace to cross: an env without
// the inbound interceptor ignores the headers, and one without the
// outbound interceptor sends none.
package rpcotel
