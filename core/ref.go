package core

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"

	"github.com/rpcenv/rpcenv/cborgen"
)

// Ref points to an endpoint, in this env or another, and sends messages
// to it. A Ref is safe for concurrent use by multiple goroutines and may
// be sent anywhere inside a message: as the message itself, as a *Ref
// field, or inside an untyped value (a field of type any, a
// map[string]any, a []any, at any depth). The receiving env can use it at
// once: it arrives as a *Ref wherever it was. A ref to an endpoint of a
// client-mode env (one without a listener) is reached over the connection
// on which it arrived; while no connection to that env exists, using it
// fails with ErrDisconnected.
//
// The zero Ref and refs decoded outside an env are unusable: get refs from
// Register, Lookup, Context.Self, or inside a received message, and bind
// refs decoded by other means with Env.Bind.
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

// refTag is the CBOR tag of a ref on the wire, a number of the
// first-come range that IANA has not assigned: a ref is self-describing,
// so that one inside an untyped value (a field of type any, say) can be
// told from any other array and decoded back into a *Ref (bind.go).
const refTag = 62064

// refWire is the content of a ref's tag: [name, address, env id, env
// name].
type refWire struct {
	_       struct{} `cbor:",toarray"`
	Name    string
	Addr    string
	EnvID   string
	EnvName string
}

// errRefIncomplete is what is wrong with a ref on the wire that lacks
// what identifies its endpoint.
var errRefIncomplete = errors.New("a ref needs a name and an env id")

// setWire makes r the unbound ref w describes, which must have a name and
// an env id.
func (r *Ref) setWire(w refWire) {
	*r = Ref{name: w.Name, addr: w.Addr, envID: w.EnvID, envName: w.EnvName, lane: laneOf(w.Name)}
	r.uri = r.makeURI()
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

// MarshalCBOR implements cbor.Marshaler: a ref travels as tag 62064
// around [name, address, env id, env name].
func (r *Ref) MarshalCBOR() ([]byte, error) {
	return encMode.Marshal(cbor.Tag{Number: refTag, Content: refWire{Name: r.name, Addr: r.addr, EnvID: r.envID, EnvName: r.envName}})
}

// UnmarshalCBOR implements cbor.Unmarshaler. It requires what
// MarshalCBOR writes, tag 62064 around four text strings with a name and
// an env id, and holds a ref to the same rules as one inside an untyped
// value (bind.go). The ref it yields is unusable until it is bound to an
// env: the env that received it binds it when it delivers the message,
// and Env.Bind binds refs decoded by other means.
func (r *Ref) UnmarshalCBOR(data []byte) error {
	rd := cborgen.NewReader(data)
	if w, ok := readRefWire(&rd); ok && rd.Done() {
		r.setWire(w)
		return nil
	}
	// Not in the layout MarshalCBOR writes: decode it as an untyped
	// value, and judge it as a ref found there is judged, for the same
	// verdict (the library also takes longer heads than needed, say) and
	// an error that says what is wrong.
	var v any
	if err := decMode.Unmarshal(data, &v); err != nil {
		return err
	}
	t, ok := v.(cbor.Tag)
	if !ok || t.Number != refTag {
		return fmt.Errorf("%w: a ref must be tag %d around [name, address, env id, env name], not %s", ErrProtocol, refTag, describe(v))
	}
	w, err := refWireOf(t.Content)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrProtocol, err.msg)
	}
	r.setWire(w)
	return nil
}

// readRefWire reads a ref's tag and content in the layout MarshalCBOR
// writes, and reports false, rd failed, for anything else (which the
// library may still accept: see UnmarshalCBOR).
func readRefWire(rd *cborgen.Reader) (refWire, bool) {
	rd.Tag(refTag)
	if rd.ArrayHead() != 4 {
		rd.Fail()
		return refWire{}, false
	}
	var w refWire
	w.Name, w.Addr, w.EnvID, w.EnvName = rd.String(), rd.String(), rd.String(), rd.String()
	rd.End()
	if rd.Failed() || w.Name == "" || w.EnvID == "" {
		rd.Fail()
		return refWire{}, false
	}
	return w, true
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

var errUnusableRef = errors.New("ref is nil or not bound to an env (get refs from Register, Lookup or a received message; bind a ref you decoded yourself with Env.Bind)")

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
