package rpcotel

import (
	"strings"
	"unicode/utf8"

	"github.com/rpcenv/rpcenv/core"
	"go.opentelemetry.io/otel/propagation"
)

// rpcenv's header limits (core.Call.Headers, docs/PROTOCOL.md "Headers").
// A call whose headers break them fails, so the carrier leaves out what
// would break them: telemetry must never fail a call.
const (
	maxHeaders     = 32
	maxHeaderKey   = 64
	maxHeaderValue = 4096
	maxHeaderBytes = 8192
	reservedPrefix = "rpcenv-"
)

// callCarrier injects into a call's headers. It is a *core.Call under
// another name, so that it fits in the TextMapCarrier interface without
// an allocation.
type callCarrier core.Call

var _ propagation.TextMapCarrier = (*callCarrier)(nil)

// Set sets the header key, in lower case, unless rpcenv would refuse it:
// a key with characters headers may not have, or a reserved one, a value
// too long, or one that would take the call's headers past their limits.
func (c *callCarrier) Set(key, value string) {
	key = strings.ToLower(key)
	if !validKey(key) || strings.HasPrefix(key, reservedPrefix) || len(value) > maxHeaderValue || !utf8.ValidString(value) {
		return
	}
	n, size := 1, len(key)+len(value)
	for k, v := range c.Headers {
		if k != key {
			n++
			size += len(k) + len(v)
		}
	}
	if n > maxHeaders || size > maxHeaderBytes {
		return
	}
	(*core.Call)(c).SetHeader(key, value)
}

// Get returns the header key, or "".
func (c *callCarrier) Get(key string) string { return c.Headers[strings.ToLower(key)] }

// Keys returns the header keys.
func (c *callCarrier) Keys() []string { return keys(c.Headers) }

// headerCarrier extracts from a delivery's headers, which must not be
// modified: Set does nothing.
type headerCarrier map[string]string

var _ propagation.TextMapCarrier = headerCarrier(nil)

func (h headerCarrier) Get(key string) string { return h[strings.ToLower(key)] }
func (headerCarrier) Set(string, string)      {}
func (h headerCarrier) Keys() []string        { return keys(h) }

func keys(h map[string]string) []string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	return ks
}

// validKey reports whether k is 1 to 64 bytes of a-z, 0-9, '-', '_', '.'.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxHeaderKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
