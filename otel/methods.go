package rpcotel

import (
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rpcenv/rpcenv/core"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// methodInfo is what the spans and durations of one method to one
// address share.
type methodInfo struct {
	name  string               // "{endpoint}/{type}": the span's name and rpc.method
	attrs []attribute.KeyValue // rpc.system.name, rpc.method, server.address
	// recordOpts record a duration without an error: attrs as a set.
	recordOpts []metric.RecordOption
	// opts start a span: [0] of the ask's or stream's kind, [1] of a send's.
	opts [2][]trace.SpanStartOption
}

func newMethodInfo(r *core.Ref, addr string, msg any, kinds [2]trace.SpanKind) *methodInfo {
	name := methodName(r, msg)
	attrs := []attribute.KeyValue{systemAttr, semconv.RPCMethod(name), semconv.ServerAddress(addr)}
	m := &methodInfo{name: name, attrs: attrs, recordOpts: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}}
	for i, k := range kinds {
		m.opts[i] = []trace.SpanStartOption{trace.WithSpanKind(k), trace.WithAttributes(attrs...)}
	}
	return m
}

// methodKey names a methodInfo.
type methodKey struct {
	endpoint, addr string
	typ            reflect.Type
}

// maxMethods bounds a methods cache: past it, a call's methodInfo is made
// for it alone, so that a program that makes endpoints without end (one
// per task) costs allocations, not memory.
const maxMethods = 4096

// methods caches methodInfos, copied on write: a call reads the map
// without a lock, and the few writes (one per method and address) copy
// it.
type methods struct {
	m  atomic.Pointer[map[methodKey]*methodInfo]
	mu sync.Mutex // serializes writers
}

// get returns the methodInfo of msg to r: its spans are of kind ask for
// asks and streams, of kind send for sends.
func (c *methods) get(r *core.Ref, msg any, ask, send trace.SpanKind) *methodInfo {
	addr := serverAddress(r)
	k := methodKey{r.Name(), addr, reflect.TypeOf(msg)}
	if p := c.m.Load(); p != nil {
		if m, ok := (*p)[k]; ok {
			return m
		}
	}
	m := newMethodInfo(r, addr, msg, [2]trace.SpanKind{ask, send})
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[methodKey]*methodInfo
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if len(old) >= maxMethods {
		return m
	}
	next := make(map[methodKey]*methodInfo, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = m
	c.m.Store(&next)
	return m
}

// typeNames caches the method names of message types: reflect.Type to
// string. A program has a bounded number of types.
var typeNames sync.Map

// methodName returns "{endpoint}/{type}" for a message to r.
func methodName(r *core.Ref, msg any) string {
	return r.Name() + "/" + typeName(msg)
}

// typeName returns the name msg's type travels under (core.TypeName:
// the name registered with core.RegisterMessage, or the Go type for an
// unregistered one), without a leading '*': T and *T are the same
// message type.
func typeName(msg any) string {
	t := reflect.TypeOf(msg)
	if t == nil {
		return "<nil>"
	}
	if s, ok := typeNames.Load(t); ok {
		return s.(string)
	}
	s := strings.TrimPrefix(core.TypeName(msg), "*")
	typeNames.Store(t, s)
	return s
}

// serverAddress returns the URI of the env that r's endpoint lives in,
// or for an env in client mode, which has none, its label
// "client://NAME.ID" (r.String() without the endpoint).
func serverAddress(r *core.Ref) string {
	if a := r.Address(); a != "" {
		return a
	}
	s, name := r.String(), r.Name()
	if len(s) > len(name) && strings.HasSuffix(s, name) && s[len(s)-len(name)-1] == '/' {
		return s[:len(s)-len(name)-1]
	}
	return s
}
