// Package core is rpcenv's message-passing environment: named endpoints
// that receive messages, refs that send and ask them, and the machinery
// between (dispatcher, inboxes, per-peer connections, the CBOR codec).
//
// An [Env] owns endpoints and connections. [Env.Register] adds an
// [Endpoint] under a name and returns a [*Ref] to it; [Env.Lookup] finds an
// endpoint of another env by URI ("tcp://host:port/name"). A Ref sends
// fire-and-forget messages ([Ref.Send]) or asks for a reply ([Ref.Ask],
// [Ask]). Refs may travel anywhere inside messages, in untyped values (any,
// map[string]any, []any) too: the receiver can use them at once, even when
// they point to an endpoint of a client-mode env (one with no listener),
// which is then reached over the connection the ref came in on. Refs that
// code decodes by other means are bound to an env with [Env.Bind].
//
// Transports are pluggable and chosen by URI scheme: a [Transport] moves
// frames of bytes and reports connection loss; everything else (outboxes,
// lazy connect, authentication, network events, failing in-flight asks)
// lives here, written once. Messages cross the wire as CBOR: built-in
// types need nothing, struct types are registered once with
// [RegisterMessage].
//
// Package core does not implement any network transport: see
// transports/inproc, transports/tcp and transports/quic.
package core
