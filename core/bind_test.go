package core

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/rpcenv/rpcenv/cborgen"
)

// loose has every kind of place where a ref can hide in an untyped value.
type loose struct {
	Any  any
	Map  map[string]any
	List []any
	Arr  [2]any
	Held map[string]refHolder
	Ptr  *any
	Note string
}

// refHolder is a struct held by value in a map: its fields cannot be set
// where they are.
type refHolder struct {
	Any any
	R   *Ref
}

// plain holds neither refs nor interfaces: its messages are never walked.
type plain struct {
	Name    string
	N       int
	Data    []byte
	M       map[string][]int
	At      time.Time
	Inner   struct{ X float64 }
	private any // unexported: never decoded, never walked
}

func init() {
	RegisterMessage[loose]("coretest.loose")
	RegisterMessage[plain]("coretest.plain")
}

// refTagOf is a ref tag around content, as a hand-made (or hostile)
// encoder could write it.
func refTagOf(content any) cbor.Tag { return cbor.Tag{Number: refTag, Content: content} }

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newBindEnv is an env without transports; a ref to one of its endpoints,
// once bound to it, delivers locally.
func newBindEnv(t *testing.T, name string) *Env {
	t.Helper()
	e, err := NewEnv(Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e
}

// echoes registers an endpoint that answers every ask with its message.
func echoes(t *testing.T, e *Env) *Ref {
	t.Helper()
	r, err := e.Register("echo", endpointFunc(func(c *Context, msg any) error { return c.Reply(msg) }))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type endpointFunc func(c *Context, msg any) error

func (f endpointFunc) Receive(c *Context, msg any) error { return f(c, msg) }

func TestRefWireFormIsTag62064(t *testing.T) {
	for _, r := range []*Ref{
		newRef(nil, "driver", "tcp://127.0.0.1:7077", "11573e2e11573e2e11573e2e11573e2e", "driver"),
		newRef(nil, "executor", "", "d1a1e2d1a1e2d1a1e2d1a1e2d1a1e2d1", "exec"), // client mode
	} {
		lib, err := r.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(lib, []byte{0xd9, 0xf2, 0x70, 0x84}) {
			t.Errorf("%s: MarshalCBOR wrote %x, want tag 62064 (d9f270) around a 4-array", r, lib)
		}
		if gen := AppendRef(nil, r); !bytes.Equal(gen, lib) {
			t.Errorf("%s: AppendRef wrote\n%x\nthe library writes\n%x", r, gen, lib)
		}
		// As a field, through the library both ways.
		var h refHolder
		if err := decMode.Unmarshal(mustMarshal(t, refHolder{R: r}), &h); err != nil {
			t.Fatalf("%s: decoding a *Ref field: %v", r, err)
		}
		if !h.R.Equal(r) || h.R.String() != r.String() || h.R.lane != r.lane || h.R.env != nil {
			t.Errorf("%s: the library decoded %+v", r, h.R)
		}
		// Through the generated path.
		rd := cborgen.NewReader(lib)
		got := ReadRef(&rd)
		if !rd.Done() || !got.Equal(r) || got.String() != r.String() || got.lane != r.lane || got.env != nil {
			t.Errorf("%s: ReadRef = %+v, done %v", r, got, rd.Done())
		}
		// Into an untyped value: the tag, as the library decodes any tag
		// it does not know.
		var v any
		if err := decMode.Unmarshal(lib, &v); err != nil {
			t.Fatal(err)
		}
		if tag, ok := v.(cbor.Tag); !ok || tag.Number != refTag {
			t.Errorf("%s: decoded into an any as %#v, want a cbor.Tag of number %d", r, v, refTag)
		}
	}
	if b := AppendRef(nil, nil); !bytes.Equal(b, []byte{cborNull}) {
		t.Errorf("AppendRef(nil) = %x, want null", b)
	}
	rd := cborgen.NewReader([]byte{cborNull})
	if r := ReadRef(&rd); r != nil || !rd.Done() {
		t.Errorf("ReadRef(null) = %v, done %v", r, rd.Done())
	}
}

func TestRefWithoutItsTagIsRefused(t *testing.T) {
	w := refWire{Name: "driver", Addr: "tcp://127.0.0.1:7077", EnvID: "11573e2e11573e2e11573e2e11573e2e", EnvName: "driver"}
	for name, data := range map[string][]byte{
		"untagged":      mustMarshal(t, w),
		"another tag":   mustMarshal(t, cbor.Tag{Number: refTag + 1, Content: w}),
		"a tag in tags": mustMarshal(t, refTagOf(refTagOf(w))),
	} {
		var r Ref
		err := r.UnmarshalCBOR(data)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: UnmarshalCBOR = %v, want an error wrapping ErrProtocol", name, err)
		}
		if name != "a tag in tags" && !strings.Contains(err.Error(), "tag 62064") {
			t.Errorf("%s: UnmarshalCBOR error %q does not name the tag", name, err)
		}
		if _, _, err := decodeBody("*rpcenv.ref", data); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: decodeBody(*rpcenv.ref) = %v, want ErrProtocol", name, err)
		}
		// In a *Ref field: the library refuses it, and so does ReadRef,
		// which leaves it to the library.
		body := mustMarshal(t, map[string]cbor.RawMessage{"R": data})
		if _, _, err := decodeBody("*"+fuzzMsgName, body); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: a fuzzMsg with it as R: %v, want ErrProtocol", name, err)
		}
		rd := cborgen.NewReader(data)
		if ReadRef(&rd); rd.Done() {
			t.Errorf("%s: ReadRef accepted %x", name, data)
		}
	}
	// Other well-formed encodings of a tagged ref are taken, as a receiver
	// must (PROTOCOL.md): a longer tag head, a self-described prefix.
	tagged := mustMarshal(t, refTagOf(w))
	for name, data := range map[string][]byte{
		"a longer tag head": append([]byte{0xda, 0, 0, 0xf2, 0x70}, tagged[3:]...),
		"self-described":    append([]byte{0xd9, 0xd9, 0xf7}, tagged...),
	} {
		var r Ref
		if err := r.UnmarshalCBOR(data); err != nil || r.String() != "tcp://127.0.0.1:7077/driver" || r.envID != w.EnvID {
			t.Errorf("%s: UnmarshalCBOR = %v, ref %s", name, err, &r)
		}
	}
	// Where the type does not say ref, an untagged array is just an array.
	v, _, err := decodeBody("coretest.loose", mustMarshal(t, loose{Any: []string{"driver", "", "id", ""}}))
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := v.(loose).Any.([]any); !ok || len(a) != 4 {
		t.Errorf("an untagged 4-array in an untyped field decoded as %#v", v.(loose).Any)
	}
}

func TestMalformedRefTagFailsTheMessageNamingWhereAndWhat(t *testing.T) {
	for _, c := range []struct {
		msg         loose
		where, what string
	}{
		{loose{Any: refTagOf("driver")}, ".Any", "got a text string"},
		{loose{Any: refTagOf(nil)}, ".Any", "got null"},
		{loose{Any: refTagOf(map[string]string{"name": "driver"})}, ".Any", "got a map"},
		{loose{Map: map[string]any{"r": refTagOf([]string{"driver", "", "id"})}}, `.Map["r"]`, "got an array of 3 items"},
		{loose{List: []any{"x", map[string]any{"r": refTagOf([]any{"driver", 7, "id", ""})}}}, `.List[1]["r"]`, "the address is an integer, not a text string"},
		{loose{Arr: [2]any{nil, refTagOf([]any{"driver", "", []byte("id"), ""})}}, ".Arr[1]", "the env id is a byte string"},
		{loose{Any: refTagOf([]string{"", "", "id", ""})}, ".Any", "a ref needs a name and an env id"},
		{loose{Any: refTagOf([]string{"driver", "tcp://h:1", "", "x"})}, ".Any", "a ref needs a name and an env id"},
		{loose{Held: map[string]refHolder{"h": {Any: refTagOf("x")}}}, `.Held["h"].Any`, "got a text string"},
		{loose{Any: cbor.Tag{Number: 40000, Content: []any{refTagOf(uint64(1))}}}, ".Any.Content[0]", "got an integer"},
	} {
		body := mustMarshal(t, c.msg)
		for _, wire := range []string{"coretest.loose", "*coretest.loose"} {
			_, _, err := decodeMessage(nil, wire, body, false)
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "at "+c.where+": ") || !strings.Contains(err.Error(), c.what) ||
				!strings.Contains(err.Error(), "tag 62064") {
				t.Errorf("%s %+v: %v; want ErrProtocol saying at %s: ... %s", wire, c.msg, err, c.where, c.what)
			}
		}
		// Bind says the same of a value decoded by other means.
		var l loose
		if err := decMode.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		err := newBindEnv(t, "b").Bind(&l)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "at "+c.where+": ") || !strings.Contains(err.Error(), c.what) {
			t.Errorf("Bind(%+v): %v; want ErrProtocol saying at %s: ... %s", c.msg, err, c.where, c.what)
		}
	}
}

// boundTo fails t unless v is a *Ref to want, bound to e.
func boundTo(t *testing.T, where string, v any, e *Env, want *Ref) *Ref {
	t.Helper()
	r, ok := v.(*Ref)
	if !ok {
		t.Errorf("%s: %#v, want a *Ref", where, v)
		return nil
	}
	if !r.Equal(want) || r.String() != want.String() || r.env != e {
		t.Errorf("%s: ref %s bound to %p, want %s bound to %p", where, r, r.env, want, e)
	}
	return r
}

func TestRefsInUntypedValuesArriveBound(t *testing.T) {
	e := newBindEnv(t, "receiver")
	r := newRef(nil, "worker", "tcp://10.0.0.7:7078", "0123456789abcdef0123456789abcdef", "exec")
	var p any = r
	sent := loose{
		Any:  r,
		Map:  map[string]any{"r": r, "n": 1},
		List: []any{"x", map[string]any{"r": r}, []any{[]any{r}}},
		Arr:  [2]any{nil, r},
		Held: map[string]refHolder{"h": {Any: r, R: r}},
		Ptr:  &p,
		Note: "n",
	}
	body := mustMarshal(t, sent)
	for _, wire := range []string{"coretest.loose", "*coretest.loose"} {
		v, mt, err := decodeMessage(e, wire, body, false)
		if err != nil || !mt.hasRefs {
			t.Fatalf("%s: %v (hasRefs %v)", wire, err, mt != nil && mt.hasRefs)
		}
		var got loose
		if wire[0] == '*' {
			got = *v.(*loose)
		} else {
			got = v.(loose)
		}
		boundTo(t, wire+" .Any", got.Any, e, r)
		boundTo(t, wire+` .Map["r"]`, got.Map["r"], e, r)
		boundTo(t, wire+` .List[1]["r"]`, got.List[1].(map[any]any)["r"], e, r)
		boundTo(t, wire+" .List[2][0][0]", got.List[2].([]any)[0].([]any)[0], e, r)
		boundTo(t, wire+" .Arr[1]", got.Arr[1], e, r)
		boundTo(t, wire+` .Held["h"].Any`, got.Held["h"].Any, e, r)
		boundTo(t, wire+` .Held["h"].R`, got.Held["h"].R, e, r)
		boundTo(t, wire+" *.Ptr", *got.Ptr, e, r)
		if got.Map["n"] != uint64(1) || got.List[0] != "x" || got.Arr[0] != nil || got.Note != "n" {
			t.Errorf("%s: the other values changed: %+v", wire, got)
		}
	}
	// A deferred body (one that arrived in chunks) is bound by its consumer.
	d := &deferred{typ: "coretest.loose", body: body}
	v, err := d.decode(e)
	if err != nil {
		t.Fatal(err)
	}
	boundTo(t, "deferred .Any", v.(loose).Any, e, r)
}

func TestBind(t *testing.T) {
	e := newBindEnv(t, "b")
	echo := echoes(t, e)
	wire, err := echo.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	usable := func(where string, v any) {
		t.Helper()
		r := boundTo(t, where, v, e, echo)
		if r == nil {
			return
		}
		if got, err := r.Ask(ctx, "ping"); err != nil || got != "ping" {
			t.Errorf("%s: Ask through the bound ref = %v, %v", where, got, err)
		}
	}

	t.Run("Ref", func(t *testing.T) {
		var r Ref
		if err := r.UnmarshalCBOR(wire); err != nil {
			t.Fatal(err)
		}
		if err := r.Send("x"); !errors.Is(err, errUnusableRef) || !strings.Contains(err.Error(), "Env.Bind") {
			t.Fatalf("Send through an unbound ref: %v; want errUnusableRef mentioning Env.Bind", err)
		}
		if err := e.Bind(&r); err != nil {
			t.Fatal(err)
		}
		usable("the ref", &r)
		if err := e.Bind(&r); err != nil {
			t.Errorf("binding a ref to its own env again: %v", err)
		}
	})
	t.Run("Struct", func(t *testing.T) {
		var l loose
		var p any = refTagOf(nil) // replaced by decoding
		l.Ptr = &p
		body := mustMarshal(t, map[string]any{
			"Any": cbor.RawMessage(wire), "Map": map[string]any{"r": cbor.RawMessage(wire)},
			"Held": map[string]any{"h": map[string]any{"Any": cbor.RawMessage(wire), "R": cbor.RawMessage(wire)}},
			"Arr":  []any{nil, cbor.RawMessage(wire)}, "Ptr": cbor.RawMessage(wire),
		})
		if err := decMode.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(&l); err != nil {
			t.Fatal(err)
		}
		usable(".Any", l.Any)
		usable(`.Map["r"]`, l.Map["r"])
		usable(`.Held["h"].Any`, l.Held["h"].Any)
		usable(`.Held["h"].R`, l.Held["h"].R)
		usable(".Arr[1]", l.Arr[1])
		usable("*.Ptr", *l.Ptr)
	})
	t.Run("MapAndSliceAsTheyAre", func(t *testing.T) {
		var m map[string]any
		if err := decMode.Unmarshal(mustMarshal(t, map[string]any{"r": cbor.RawMessage(wire), "s": "x"}), &m); err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(m); err != nil {
			t.Fatal(err)
		}
		usable(`["r"]`, m["r"])
		var s []any
		if err := decMode.Unmarshal(mustMarshal(t, []any{1, cbor.RawMessage(wire)}), &s); err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(s); err != nil {
			t.Fatal(err)
		}
		usable("[1]", s[1])
	})
	t.Run("NestedAny", func(t *testing.T) {
		var v any
		if err := decMode.Unmarshal(mustMarshal(t, []any{map[string]any{"list": []any{map[string]any{"r": cbor.RawMessage(wire)}}}}), &v); err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(&v); err != nil {
			t.Fatal(err)
		}
		usable(`[0]["list"][0]["r"]`, v.([]any)[0].(map[any]any)["list"].([]any)[0].(map[any]any)["r"])
		// The ref itself as the untyped value.
		var w any
		if err := decMode.Unmarshal(wire, &w); err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(&w); err != nil {
			t.Fatal(err)
		}
		usable("the any", w)
	})
	t.Run("RefOfAnotherEnv", func(t *testing.T) {
		other := newBindEnv(t, "other")
		theirs := echoes(t, other)
		if err := e.Bind(theirs); err == nil || !strings.Contains(err.Error(), "another env") {
			t.Errorf("Bind of a ref bound to another env: %v, want an error saying so", err)
		}
		h := refHolder{R: theirs, Any: theirs}
		if err := e.Bind(&h); err != nil {
			t.Fatal(err)
		}
		for where, r := range map[string]*Ref{".R": h.R, ".Any": h.Any.(*Ref)} {
			if r == theirs || !r.Equal(theirs) || r.env != e {
				t.Errorf("%s: %s bound to %p; want a copy bound to %p", where, r, r.env, e)
			}
		}
		if theirs.env != other {
			t.Error("Bind rebound the other env's ref in place")
		}
	})
	t.Run("Refused", func(t *testing.T) {
		for name, v := range map[string]any{
			"nil":               nil,
			"a nil *Ref":        (*Ref)(nil),
			"a nil pointer":     (*loose)(nil),
			"a struct value":    loose{},
			"an interface of a": any(refHolder{}),
		} {
			if err := e.Bind(v); err == nil {
				t.Errorf("Bind(%s) succeeded", name)
			} else if !strings.HasPrefix(err.Error(), "rpcenv: Bind") {
				t.Errorf("Bind(%s): %q, want an error naming Bind", name, err)
			}
		}
		// Nothing to bind is no error.
		for _, v := range []any{&plain{}, map[string]int{"a": 1}, []string{"x"}, new(int)} {
			if err := e.Bind(v); err != nil {
				t.Errorf("Bind(%T): %v", v, err)
			}
		}
	})
}

// nestedList is n []any nested in one another around last.
func nestedList(n int, last any) any {
	v := last
	for range n {
		v = []any{v}
	}
	return v
}

func TestBindIsBoundedInDepth(t *testing.T) {
	e := newBindEnv(t, "deep")
	echo := echoes(t, e)
	// As deep as the decoder accepts, with a ref at the bottom: a struct
	// (one level) holding 30 arrays, the last holding the ref, whose
	// content is the 32nd level.
	body := mustMarshal(t, loose{List: nestedList(29, []any{echo}).([]any)})
	v, _, err := decodeMessage(e, "coretest.loose", body, false)
	if err != nil {
		t.Fatalf("a message 32 levels deep: %v", err)
	}
	var bottom any = v.(loose).List
	for {
		s, ok := bottom.([]any)
		if !ok {
			break
		}
		bottom = s[0]
	}
	boundTo(t, "the bottom of 32 levels", bottom, e, echo)
	if _, _, err := decodeBodyOf("coretest.loose", mustMarshal(t, loose{List: nestedList(30, []any{echo}).([]any)}), false); !errors.Is(err, ErrProtocol) {
		t.Fatalf("the decoder accepts 33 levels: %v", err)
	}

	// What is no level on the wire (a time, a text string in CBOR) is none
	// for the walk either, at the deepest level.
	body = mustMarshal(t, loose{List: nestedList(30, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)).([]any)})
	if _, _, err := decodeMessage(e, "coretest.loose", body, false); err != nil {
		t.Errorf("a time 32 levels deep: %v", err)
	}
	var atBottom any = nestedList(32, time.Now())
	if err := e.Bind(&atBottom); err != nil {
		t.Errorf("Bind of a time 32 levels deep: %v", err)
	}

	// Bind stops at the same depth, and on cycles.
	var ok any = nestedList(32, echo)
	if err := e.Bind(&ok); err != nil {
		t.Errorf("Bind of 32 levels: %v", err)
	}
	var deep any = nestedList(33, echo)
	if err := e.Bind(&deep); err == nil || !strings.Contains(err.Error(), "nested deeper than 32 levels") {
		t.Errorf("Bind of 33 levels: %v, want an error saying the limit", err)
	}
	type node struct {
		Next *node
		Any  any
	}
	n := &node{}
	n.Next = n
	if err := e.Bind(n); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("Bind of a cycle of structs: %v, want the depth error", err)
	}
	var self any
	self = &self
	if err := e.Bind(&self); err == nil || !strings.Contains(err.Error(), "in a row") {
		t.Errorf("Bind of a cycle of pointers: %v, want an error", err)
	}
}

func TestOnlyTypesThatMayHoldRefsAreWalked(t *testing.T) {
	for _, c := range []struct {
		v    any
		want bool
	}{
		{plain{}, false},
		{[]byte{}, false},
		{time.Time{}, false},
		{map[string][]int{}, false},
		{struct{ private any }{}, false},
		{[3]int{}, false},
		{(*Ref)(nil), true},
		{loose{}, true},
		{refHolder{}, true},
		{[]any{}, true},
		{map[string]any{}, true},
		{map[any]int{}, true},
		{[2]any{}, true},
		{new(any), true},
		{struct{ S []struct{ X any } }{}, true},
		{struct{ M map[string]*Ref }{}, true},
	} {
		if got := containsRef(reflect.TypeOf(c.v), map[reflect.Type]bool{}); got != c.want {
			t.Errorf("containsRef(%T) = %v, want %v", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		wire string
		want bool
	}{
		{"coretest.plain", false},
		{"string", false},
		{"bytes", false},
		{"coretest.loose", true},
		{fuzzMsgName, true},
		{"rpcenv.ref", true},
	} {
		if mt, _, ok := lookupName(c.wire); !ok || mt.hasRefs != c.want {
			t.Errorf("%s: hasRefs %v, want %v", c.wire, ok && mt.hasRefs, c.want)
		}
	}
	// A type with interfaces but no ref in them is walked without
	// changing anything, and without allocating.
	e := newBindEnv(t, "w")
	body := mustMarshal(t, loose{Any: "x", Map: map[string]any{"k": []any{1, "y"}}, List: []any{2.5, map[string]any{"z": nil}}})
	v, _, err := decodeMessage(e, "coretest.loose", body, false)
	if err != nil || !reflect.DeepEqual(v, loose{Any: "x", Map: map[string]any{"k": []any{uint64(1), "y"}}, List: []any{2.5, map[any]any{"z": nil}}}) {
		t.Errorf("decoded %#v, %v", v, err)
	}
	b := binder{env: e}
	if n := testing.AllocsPerRun(100, func() { b.walk(reflect.ValueOf(v), 0, 0) }); n != 0 {
		t.Errorf("walking a message without refs: %v allocations, want none", n)
	}
	// A type without refs or interfaces costs nothing beyond its decoding.
	if raceEnabled {
		return // pooled decoders allocate at random under -race
	}
	body = mustMarshal(t, plain{Name: "p", M: map[string][]int{"a": {1}}})
	walked := testing.AllocsPerRun(100, func() { decodeMessage(e, "coretest.plain", body, false) })
	decoded := testing.AllocsPerRun(100, func() { decodeBodyOf("coretest.plain", body, false) })
	if walked != decoded {
		t.Errorf("decoding a plain message: %v allocations, %v without the walk", walked, decoded)
	}
}
