package core

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Binding refs. A ref crosses the wire as tag 62064 (ref.go) wherever it
// is in a body. Where the Go type says *Ref, it decodes into a *Ref
// (Ref.UnmarshalCBOR, or ReadRef in generated code); inside an untyped
// value (a field of type any, a []any, a map[string]any, ...) the library
// decodes it as a cbor.Tag. Either way the ref is unusable until bound to
// an env. After decoding a message of a type that may hold refs
// (msgType.hasRefs), the walk here binds every *Ref to the env that
// received it and replaces every ref tag inside an interface with a bound
// *Ref. Env.Bind runs the same walk on values that user code decoded.
// Message types that hold neither refs nor interfaces are never walked.

var (
	refPtrType = reflect.TypeFor[*Ref]()
	tagType    = reflect.TypeFor[cbor.Tag]()
	tagContent = []int{1} // cbor.Tag's field Content, for binder.fields
)

// Bind makes the refs in v send through e. Refs are bound to the env
// that receives them when it delivers a message; Bind is for refs that
// were decoded by other means (from a file, a cbor.RawMessage field, a
// message of another protocol), which are unusable until bound.
//
// v is a *Ref, or a pointer to a value holding refs anywhere (a struct, a
// map, a slice, an any, nested at any depth); a map or a slice may also
// be passed as it is. Bind binds every *Ref in v that is bound to no env
// yet. A ref decoded into an interface value (a field of type any, an
// element of a []any, a value of a map[string]any) is a cbor.Tag of
// number 62064, the form refs take on the wire: Bind replaces each with a
// *Ref bound to e. A ref bound to another env is replaced by a copy bound
// to e, so that the users of the original are not disturbed; a *Ref
// passed as v itself cannot be replaced, and must not be bound elsewhere.
// Refs used as map keys are bound if unbound, and never replaced.
//
// Bind returns an error, binding what it met before, for a nil v or a v
// that is neither a *Ref, a pointer, a map nor a slice; for a malformed
// ref tag (its content not [name, address, env id, env name] as text
// strings, or without a name or an env id; the error wraps ErrProtocol
// and says where in v it was); for a ref tag inside an interface type
// that *Ref does not implement; and for a value nested deeper than the
// decoder accepts (32 levels of structs, maps, slices and arrays).
//
// Bind writes into v: call it before v is shared with other goroutines.
func (e *Env) Bind(v any) error {
	if v == nil {
		return errors.New("rpcenv: Bind(nil): want a *Ref or a pointer to a value holding refs")
	}
	if r, ok := v.(*Ref); ok {
		switch {
		case r == nil:
			return errors.New("rpcenv: Bind of a nil *Ref")
		case r.env == nil:
			r.bind(e)
		case r.env != e:
			return fmt.Errorf("rpcenv: bind %s: the ref is bound to another env; pass a pointer to where it is kept (&ref) to replace it with a copy bound to this one", r)
		}
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return fmt.Errorf("rpcenv: Bind((%T)(nil)): want a non-nil pointer", v)
		}
	case reflect.Map, reflect.Slice:
		// Their elements can be replaced where they are.
	default:
		return fmt.Errorf("rpcenv: Bind(%T): want a *Ref, a pointer, a map or a slice, so that the refs in it can be replaced", v)
	}
	if !mayHoldRef(rv.Type()) {
		return nil
	}
	b := binder{env: e}
	if _, _, err := b.walk(rv, 0, 0); err != nil {
		return fmt.Errorf("rpcenv: bind %T: %w", v, err)
	}
	return nil
}

// decodeMessage decodes a body that e received (decodeBodyOf) and, for a
// type that may hold refs, binds them to e, turning the ref tags inside
// interface values into *Ref. With e nil the refs stay unbound (the
// checks are the same). A malformed ref makes the body undecodable: the
// error wraps ErrProtocol and says where the ref was.
func decodeMessage(e *Env, wire string, body []byte, owned bool) (any, *msgType, error) {
	msg, mt, err := decodeBodyOf(wire, body, owned)
	if err != nil || mt == nil || !mt.hasRefs {
		return msg, mt, err
	}
	b := binder{env: e}
	nv, changed, berr := b.walk(reflect.ValueOf(msg), 0, 0)
	if berr != nil {
		return nil, nil, fmt.Errorf("%w: decode %s: %v", ErrProtocol, wire, berr)
	}
	if changed {
		msg = nv.Interface() // a struct value that was copied to change it
	}
	return msg, mt, nil
}

// containsRef reports whether a value of t can hold a *Ref after
// decoding: t is *Ref, an interface (a ref decodes into one as a
// cbor.Tag, which the walk turns into a *Ref), or a type whose exported
// fields, elements, keys or values can.
func containsRef(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == refPtrType || t.Kind() == reflect.Interface {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return containsRef(t.Elem(), seen)
	case reflect.Map:
		return containsRef(t.Key(), seen) || containsRef(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && containsRef(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// refPlan is what the walk needs to know about a type, worked out once.
type refPlan struct {
	may    bool  // containsRef
	fields []int // of a struct: the exported fields that may hold refs
}

var refPlans sync.Map // reflect.Type -> *refPlan

func planOf(t reflect.Type) *refPlan {
	if p, ok := refPlans.Load(t); ok {
		return p.(*refPlan)
	}
	p := &refPlan{may: containsRef(t, map[reflect.Type]bool{})}
	if p.may && t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && containsRef(f.Type, map[reflect.Type]bool{}) {
				p.fields = append(p.fields, i)
			}
		}
	}
	actual, _ := refPlans.LoadOrStore(t, p)
	return actual.(*refPlan)
}

// mayHoldRef is containsRef, worked out once per type.
func mayHoldRef(t reflect.Type) bool { return planOf(t).may }

// bindError is what the walk found wrong, and where.
type bindError struct {
	path     string // from the root: .Field, [3], ["key"]
	msg      string
	protocol bool // a malformed ref: wraps ErrProtocol
}

func (e *bindError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return "at " + e.path + ": " + e.msg
}

func (e *bindError) Unwrap() error {
	if e.protocol {
		return ErrProtocol
	}
	return nil
}

// at prefixes the path with the step that led to the error.
func (e *bindError) at(step string) *bindError {
	e.path = step + e.path
	return e
}

// binder walks a value, binding its refs to env (nil: leaving them
// unbound, only turning ref tags into refs).
type binder struct{ env *Env }

// walk binds the refs in v. depth counts the structs, maps, slices and
// arrays above v, as the decoder counts nesting levels (structs are maps
// or arrays on the wire; an embedded struct's fields are its parent's);
// hops counts the pointers, interfaces and tags since the last struct,
// map, slice or array, so that a cycle of pointers ends too.
//
// Where a value in v must change (a ref tag inside an interface becomes
// a *Ref, a ref bound elsewhere becomes a copy bound to env) and its place
// can be set, walk sets it. Where it cannot (v is a map's value, the value
// inside an interface, or a field of one), walk returns the value to store
// in v's place and changed true: the caller stores it (SetMapIndex, or
// Set on a copy it makes of the struct or array holding v).
func (b *binder) walk(v reflect.Value, depth, hops int) (nv reflect.Value, changed bool, err *bindError) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.Type() == refPtrType {
			if r, ch := b.ref(v.Interface().(*Ref)); ch {
				return reflect.ValueOf(r), true, nil
			}
			return
		}
		if hops >= maxNesting {
			return nv, false, tooLong()
		}
		elem := v.Elem()
		if !mayHoldRef(elem.Type()) {
			return
		}
		ne, ch, err := b.walk(elem, depth, hops+1)
		if err != nil {
			return nv, false, err
		}
		if ch {
			elem.Set(ne) // what a pointer points to is settable
		}
		return nv, false, nil
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		x, ch, err := b.walkAny(v.Interface(), depth, hops)
		if err != nil || !ch {
			return nv, false, err
		}
		ne := reflect.ValueOf(x)
		if !ne.Type().AssignableTo(v.Type()) {
			return nv, false, &bindError{msg: fmt.Sprintf("a ref cannot be stored in a value of type %v", v.Type())}
		}
		if v.CanSet() {
			v.Set(ne)
			return nv, false, nil
		}
		return ne, true, nil
	case reflect.Struct:
		t := v.Type()
		if t == tagType {
			// A tag held by value, not in an interface: its content may
			// hold refs. A tag is no level of nesting for the decoder.
			if hops >= maxNesting {
				return nv, false, tooLong()
			}
			return b.fields(v, tagContent, depth, hops+1, false)
		}
		fields := planOf(t).fields
		if len(fields) == 0 {
			return // a time.Time, say: a text string on the wire, no level
		}
		if depth >= maxNesting {
			return nv, false, tooDeep()
		}
		return b.fields(v, fields, depth, 0, true)
	case reflect.Array:
		if !mayHoldRef(v.Type().Elem()) {
			return
		}
		if depth >= maxNesting {
			return nv, false, tooDeep()
		}
		for i := range v.Len() {
			ne, ch, err := b.walk(v.Index(i), depth+1, 0)
			if err != nil {
				return nv, false, err.at(fmt.Sprintf("[%d]", i))
			}
			if ch {
				if !v.CanSet() {
					v, nv, changed = settableCopy(v)
				}
				v.Index(i).Set(ne)
			}
		}
		return
	case reflect.Slice:
		if v.IsNil() || !mayHoldRef(v.Type().Elem()) {
			return
		}
		if depth >= maxNesting {
			return nv, false, tooDeep()
		}
		for i := range v.Len() {
			elem := v.Index(i) // a slice's elements are settable
			ne, ch, err := b.walk(elem, depth+1, 0)
			if err != nil {
				return nv, false, err.at(fmt.Sprintf("[%d]", i))
			}
			if ch {
				elem.Set(ne)
			}
		}
		return
	case reflect.Map:
		if v.IsNil() {
			return
		}
		switch m := v.Interface().(type) {
		case map[string]any:
			// What decoding into a map[string]any field gives: ranged
			// natively, which allocates nothing (MapRange does).
			_, _, err = b.walkAny(m, depth, hops)
			return nv, false, err
		case map[any]any:
			_, _, err = b.walkAny(m, depth, hops)
			return nv, false, err
		}
		t := v.Type()
		keys, vals := mayHoldRef(t.Key()), mayHoldRef(t.Elem())
		if !keys && !vals {
			return
		}
		if depth >= maxNesting {
			return nv, false, tooDeep()
		}
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			if keys {
				// Keys cannot be replaced: refs in them are bound where
				// they are (walk binds an unbound ref in place).
				if _, _, err := b.walk(k, depth+1, 0); err != nil {
					return nv, false, err.at(keyStep(k.Interface()))
				}
			}
			if vals {
				ne, ch, err := b.walk(it.Value(), depth+1, 0)
				if err != nil {
					return nv, false, err.at(keyStep(k.Interface()))
				}
				if ch {
					v.SetMapIndex(k, ne) // an existing key: allowed while ranging
				}
			}
		}
		return
	}
	return
}

// walkAny is walk for the value of an interface, with the values that
// decoding into an interface gives handled without reflection: a ref's
// tag becomes a *Ref, returned with changed true for the caller to store
// in the interface's place, as any other value that changed.
func (b *binder) walkAny(x any, depth, hops int) (nx any, changed bool, err *bindError) {
	if hops >= maxNesting {
		return nil, false, tooLong()
	}
	switch x := x.(type) {
	case nil, string, bool, uint64, int64, float64, []byte:
		return nil, false, nil
	case cbor.Tag:
		if x.Number == refTag {
			w, err := refWireOf(x.Content)
			if err != nil {
				return nil, false, err
			}
			r := new(Ref)
			r.setWire(w)
			if b.env != nil {
				r.bind(b.env)
			}
			return r, true, nil
		}
		// Another tag: its content may hold refs. A tag is no level of
		// nesting for the decoder.
		c, ch, err := b.walkAny(x.Content, depth, hops+1)
		if err != nil {
			return nil, false, err.at(".Content")
		}
		if ch {
			x.Content = c // x is a copy: the caller stores it
			return x, true, nil
		}
		return nil, false, nil
	case []any:
		if depth >= maxNesting {
			return nil, false, tooDeep()
		}
		for i, e := range x {
			ne, ch, err := b.walkAny(e, depth+1, 0)
			if err != nil {
				return nil, false, err.at(fmt.Sprintf("[%d]", i))
			}
			if ch {
				x[i] = ne
			}
		}
		return nil, false, nil
	case map[any]any:
		return nil, false, walkAnyMap(b, x, depth)
	case map[string]any:
		return nil, false, walkAnyMap(b, x, depth)
	case *Ref:
		if x == nil {
			return nil, false, nil
		}
		if r, ch := b.ref(x); ch {
			return r, true, nil
		}
		return nil, false, nil
	}
	// Any other type, which only code other than the decoder puts in an
	// interface.
	nv, ch, err := b.walk(reflect.ValueOf(x), depth, hops+1)
	if ch {
		return nv.Interface(), true, nil
	}
	return nil, false, err
}

// fields walks the fields of struct v at indexes; level says whether v
// counts as a level of nesting (a struct does, a cbor.Tag does not).
func (b *binder) fields(v reflect.Value, indexes []int, depth, hops int, level bool) (nv reflect.Value, changed bool, err *bindError) {
	t := v.Type()
	for _, i := range indexes {
		f := t.Field(i)
		d, h := depth, hops
		if level && !(f.Anonymous && (f.Type.Kind() == reflect.Struct || f.Type.Kind() == reflect.Pointer)) {
			d, h = depth+1, 0
		}
		ne, ch, err := b.walk(v.Field(i), d, h)
		if err != nil {
			return nv, false, err.at("." + f.Name)
		}
		if ch {
			if !v.CanSet() {
				v, nv, changed = settableCopy(v)
			}
			v.Field(i).Set(ne)
		}
	}
	return
}

// settableCopy copies v into a new settable value, returned twice: as the
// value to go on with and as the one to store in v's place.
func settableCopy(v reflect.Value) (reflect.Value, reflect.Value, bool) {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c, c, true
}

// ref binds r and reports false, or returns a copy bound to b.env and
// true if r sends through another env.
func (b *binder) ref(r *Ref) (*Ref, bool) {
	switch {
	case b.env == nil || r.env == b.env:
	case r.env == nil:
		r.bind(b.env)
	default:
		c := new(Ref)
		c.setWire(refWire{Name: r.name, Addr: r.addr, EnvID: r.envID, EnvName: r.envName})
		c.bind(b.env)
		return c, true
	}
	return nil, false
}

// walkAnyMap walks the values of a map the decoder made (map[any]any,
// or map[string]any with DefaultMapType), replacing those that change:
// existing keys, which a range allows.
func walkAnyMap[K comparable](b *binder, x map[K]any, depth int) *bindError {
	if depth >= maxNesting {
		return tooDeep()
	}
	for k, e := range x {
		ne, ch, err := b.walkAny(e, depth+1, 0)
		if err != nil {
			return err.at(keyStep(k))
		}
		if ch {
			x[k] = ne
		}
	}
	return nil
}

func tooDeep() *bindError {
	return &bindError{msg: fmt.Sprintf("nested deeper than %d levels", maxNesting)}
}

func tooLong() *bindError {
	return &bindError{msg: fmt.Sprintf("more than %d pointers, interfaces and tags in a row", maxNesting)}
}

func keyStep(k any) string {
	if s, ok := k.(string); ok {
		return fmt.Sprintf("[%q]", s)
	}
	return fmt.Sprintf("[%v]", k)
}

// refWireItems names the items of a ref's tag content, for errors.
var refWireItems = [4]string{"name", "address", "env id", "env name"}

// refWireOf checks the content of a ref tag, as the library decodes it
// into an interface, and returns the ref it describes.
func refWireOf(content any) (refWire, *bindError) {
	bad := func(format string, args ...any) *bindError {
		return &bindError{msg: fmt.Sprintf("ref (tag %d): ", refTag) + fmt.Sprintf(format, args...), protocol: true}
	}
	items, ok := content.([]any)
	if !ok || len(items) != 4 {
		return refWire{}, bad("want [name, address, env id, env name], got %s", describe(content))
	}
	var s [4]string
	for i, it := range items {
		if s[i], ok = it.(string); !ok {
			return refWire{}, bad("the %s is %s, not a text string", refWireItems[i], describe(it))
		}
	}
	w := refWire{Name: s[0], Addr: s[1], EnvID: s[2], EnvName: s[3]}
	if w.Name == "" || w.EnvID == "" {
		return refWire{}, bad("%v", errRefIncomplete)
	}
	return w, nil
}

// describe names the CBOR item that decoded into v, for errors.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "a text string"
	case []byte:
		return "a byte string"
	case bool:
		return "a bool"
	case uint64, int64:
		return "an integer"
	case float64, float32:
		return "a float"
	case []any:
		if len(v) == 1 {
			return "an array of 1 item"
		}
		return fmt.Sprintf("an array of %d items", len(v))
	case map[any]any:
		return "a map"
	case cbor.Tag:
		return fmt.Sprintf("tag %d", v.Number)
	}
	return "a " + strings.TrimPrefix(fmt.Sprintf("%T", v), "*")
}
