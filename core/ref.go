package core

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"sync/atomic"
)

// Ref points to an endpoint, in this env or another, and sends messages
// to it. A Ref is safe for concurrent use by multiple goroutines and may
// be sent inside messages (as a *Ref field or as the message itself): the
// receiving env can use it at once. A ref to an endpoint of a client-mode
// env (one without a listener) is reached over the connection on which it
// arrived; while no connection to that env exists, using it fails with
// ErrDisconnected.
//
// The zero Ref and refs decoded outside an env are unusable: get refs from
// Register, Lookup, Context.Self, or inside a received message.
type Ref struct {
	name    string
	addr    string // advertised URI of the owning env; "" for a client-mode env
	envID   string // the owning env's unique id
	envName string // the owning env's Config.Name, for messages about client-mode refs
	lane    uint64 // ordering lane for sends to this endpoint (never 0)
	uri     string // String(), made once

	env *Env      // the env this ref sends through; set once, before the ref is shared
	ep  *endpoint // the endpoint itself when it belongs to env (a cache)

	route atomic.Pointer[peer] // the connection last used, while it is alive
}

// refWire is a Ref on the wire: [name, address, env id, env name].
type refWire struct {
	_       struct{} `cbor:",toarray"`
	Name    string
	Addr    string
	EnvID   string
	EnvName string
}

func newRef(e *Env, name, addr, envID, envName string) *Ref {
	r := &Ref{name: name, addr: addr, envID: envID, envName: envName, lane: laneOf(name), env: e}
	r.uri = r.makeURI()
	return r
}

func laneOf(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1 // never 0, which means "unordered"
}

// MarshalCBOR implements cbor.Marshaler: a ref travels as its name, its
// env's address and its env's id.
func (r *Ref) MarshalCBOR() ([]byte, error) {
	return encMode.Marshal(refWire{Name: r.name, Addr: r.addr, EnvID: r.envID, EnvName: r.envName})
}

// UnmarshalCBOR implements cbor.Unmarshaler. The ref it yields becomes
// usable when the env that received it delivers the message.
func (r *Ref) UnmarshalCBOR(data []byte) error {
	var w refWire
	if err := decMode.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.Name == "" || w.EnvID == "" {
		return fmt.Errorf("%w: a ref needs a name and an env id", ErrProtocol)
	}
	*r = Ref{name: w.Name, addr: w.Addr, envID: w.EnvID, envName: w.EnvName, lane: laneOf(w.Name)}
	r.uri = r.makeURI()
	return nil
}

// bind makes a decoded ref send through e.
func (r *Ref) bind(e *Env) {
	r.env = e
}

// Name returns the endpoint's name.
func (r *Ref) Name() string { return r.name }

// Address returns the URI of the endpoint's env ("tcp://127.0.0.1:41234"),
// or "" for an endpoint of a client-mode env.
func (r *Ref) Address() string { return r.addr }

// String returns the endpoint's URI, "tcp://127.0.0.1:41234/driver". For
// an endpoint of a client-mode env, which has no address, it returns
// "client://ENVNAME.ID/name", with the env's name and its full id (32 hex
// digits): a label, not a URI to look up.
//
// String is the same for every ref to the endpoint, however it was
// obtained (Register, Lookup, inside a message, through another env), so
// it can serve as a map key. It names an endpoint at an address: a
// listening env restarted at the same address gives its endpoints the
// same strings, while Equal tells the two env instances apart.
func (r *Ref) String() string {
	if r == nil {
		return "<nil ref>"
	}
	if r.uri == "" {
		return "<zero ref>"
	}
	return r.uri
}

// Equal reports whether r and o refer to the same endpoint: the same name
// in the same env instance, told by the env's id, which every env draws
// at random when it is created (so an env restarted at the same address
// is another env). Refs obtained in different ways are Equal when they
// name the same endpoint. A nil ref is Equal only to nil.
func (r *Ref) Equal(o *Ref) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.name == o.name && r.envID == o.envID
}

func (r *Ref) makeURI() string {
	if r.addr != "" {
		return r.addr + "/" + r.name
	}
	return clientURI(r.envName, r.envID, r.name)
}

// clientURI is the label of an endpoint of a client-mode env.
func clientURI(envName, envID, name string) string {
	return "client://" + envName + "." + envID + "/" + name
}

var errUnusableRef = errors.New("ref is nil or not bound to an env (get refs from Register, Lookup or a received message)")

// Send delivers msg to the endpoint, fire-and-forget and at most once.
// It returns only the errors known at once: an unregistered type
// (ErrUnregisteredType), a message too large (ErrMessageTooLarge), a
// stopped env (ErrEnvStopped), an endpoint of this env that does not
// exist (ErrEndpointNotFound), a client-mode peer with no connection
// (ErrDisconnected). A message that is lost later (its connection fails,
// the remote endpoint does not exist) is counted as a dead letter by the
// env that dropped it, and logged.
//
// Sends from one goroutine to one endpoint are received in the order sent.
func (r *Ref) Send(msg any) error {
	return r.SendContext(context.Background(), msg)
}

// SendContext is Send with a context: the env's outbound interceptors see
// it (a handler that passes its Context.Context() continues its trace),
// and a send that waits for the remote endpoint to take more gives up
// when ctx is done, returning ctx's error (the message is then a dead
// letter).
func (r *Ref) SendContext(ctx context.Context, msg any) error {
	if r == nil || r.env == nil {
		return fmt.Errorf("rpcenv: send %s: %w", r, errUnusableRef)
	}
	if r.env.outbound != nil {
		_, err := r.env.outbound(ctx, &Call{Kind: KindSend, Target: r, Message: msg})
		return err
	}
	return r.env.send(ctx, r, msg, nil)
}

// Ask sends msg to the endpoint and waits for its reply. The wait ends at
// ctx's deadline or, when ctx has none, after Config.AskTimeout; the error
// then wraps context.DeadlineExceeded and names the target, the time
// waited and where the deadline came from. An answer the endpoint failed
// with arrives as a *RemoteError. If the connection carrying the ask
// breaks, Ask fails at once with ErrDisconnected.
//
// An ask made while handling a message, with a context derived from the
// handler's (Context.Context), fails at once with ErrDeadlock when it
// could never be answered: it asks an endpoint of concurrency 1 of the
// same env that is waiting for it, either the asking endpoint itself or
// one that asked it through a chain of asks within the env ("a -> b ->
// a"). The error names the chain. Cycles through other envs, asks made
// with an unrelated context, and endpoints with more than one worker are
// not detected; such an ask waits for its deadline. The check assumes a
// handler waits for the asks it made: one that asks from another
// goroutine and goes on may see ErrDeadlock for an ask that would have
// been answered once it returned.
func (r *Ref) Ask(ctx context.Context, msg any) (any, error) {
	if r == nil || r.env == nil {
		return nil, fmt.Errorf("rpcenv: ask %s: %w", r, errUnusableRef)
	}
	if r.env.outbound != nil {
		return r.env.outbound(ctx, &Call{Kind: KindAsk, Target: r, Message: msg})
	}
	return r.env.ask(ctx, r, msg, nil)
}

// Ask is Ref.Ask with the reply's type checked: a reply that is not a T
// is an error naming both types.
func Ask[T any](ctx context.Context, r *Ref, msg any) (T, error) {
	var zero T
	v, err := r.Ask(ctx, msg)
	if err != nil {
		return zero, err
	}
	if v == nil {
		// A nil reply is the zero value of a pointer, interface, slice or map T.
		switch reflect.TypeFor[T]().Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
			return zero, nil
		}
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("rpcenv: ask %s: the reply is a %T, not a %v", r, v, reflect.TypeFor[T]())
	}
	return t, nil
}
