package gen

import (
	"go/ast"
	"go/token"
	"strings"
	"unicode"
)

const prefix = "//rpcgen:"

// name is a word of a directive and where it starts.
type name struct {
	text string
	pos  token.Pos
}

// kind is what a directive makes of its message.
type kind int

const (
	kindSend    kind = iota // //rpcgen:send
	kindAsk                 // //rpcgen:ask
	kindStream              // //rpcgen:stream
	kindMessage             // //rpcgen:message
)

// directive is one parsed //rpcgen: line.
type directive struct {
	pos       token.Pos // the comment's start
	kind      kind
	endpoints []name // one for an ask or a stream
	reply     name   // the reply type of an ask
}

// isDirective reports whether c is an //rpcgen: line, well formed or not.
func isDirective(c *ast.Comment) bool { return strings.HasPrefix(c.Text, prefix) }

// parseDirective parses c, which isDirective; it reports mistakes to e
// and returns ok false if there were any.
func parseDirective(c *ast.Comment, e *errs) (d directive, ok bool) {
	d.pos = c.Slash
	n := len(e.list)
	words := split(c.Text, c.Slash)
	verb := words[0].text
	args := words[1:]
	switch verb {
	case "//rpcgen:send":
		if len(args) == 0 {
			e.add(c.Slash, "//rpcgen:send names no endpoint (want //rpcgen:send E1[,E2...])")
			return d, false
		}
		d.endpoints = splitComma(args[0])
		for _, w := range args[1:] {
			e.add(w.pos, "unexpected %q after the endpoint list (want //rpcgen:send E1[,E2...], without spaces)", w.text)
		}
	case "//rpcgen:ask":
		d.kind = kindAsk
		if len(args) == 0 {
			e.add(c.Slash, "//rpcgen:ask names no endpoint (want //rpcgen:ask E reply=R)")
			return d, false
		}
		d.endpoints = oneEndpoint(verb, args[0], e)
		for _, w := range args[1:] {
			key, val, found := strings.Cut(w.text, "=")
			switch {
			case !found || key != "reply":
				e.add(w.pos, "unknown or misspelled key %q (want reply=R)", w.text)
			case d.reply.text != "":
				e.add(w.pos, "reply= given twice")
			case val == "":
				e.add(w.pos, "reply= names no type")
			default:
				d.reply = name{val, w.pos + token.Pos(len("reply="))}
			}
		}
		if d.reply.text == "" && len(e.list) == n {
			e.add(c.Slash, "//rpcgen:ask %s has no reply type (want //rpcgen:ask E reply=R)", args[0].text)
		}
	case "//rpcgen:stream":
		d.kind = kindStream
		if len(args) == 0 {
			e.add(c.Slash, "//rpcgen:stream names no endpoint (want //rpcgen:stream E)")
			return d, false
		}
		d.endpoints = oneEndpoint(verb, args[0], e)
		for _, w := range args[1:] {
			if strings.HasPrefix(w.text, "reply=") {
				e.add(w.pos, "//rpcgen:stream takes no reply type: the handler answers on the stream (want //rpcgen:stream E)")
				continue
			}
			e.add(w.pos, "unexpected %q after the endpoint (want //rpcgen:stream E)", w.text)
		}
	case "//rpcgen:message":
		d.kind = kindMessage
		for _, w := range args {
			e.add(w.pos, "unexpected %q: //rpcgen:message takes no arguments", w.text)
		}
	default:
		e.add(c.Slash, "unknown directive %q (want //rpcgen:send, //rpcgen:ask, //rpcgen:stream or //rpcgen:message)", verb)
		return d, false
	}
	for _, ep := range d.endpoints {
		if !token.IsIdentifier(ep.text) || !token.IsExported(ep.text) {
			e.add(ep.pos, "endpoint name %q is not an exported Go identifier", ep.text)
		}
	}
	return d, len(e.list) == n
}

// oneEndpoint returns the endpoint w names for verb, a directive that
// takes one, or reports a list.
func oneEndpoint(verb string, w name, e *errs) []name {
	if strings.Contains(w.text, ",") {
		e.add(w.pos, "%s names one endpoint, not %q", verb, w.text)
		return nil
	}
	return []name{w}
}

// split returns the space-separated words of s, which starts at pos.
func split(s string, pos token.Pos) []name {
	var words []name
	start := -1
	for i, r := range s + " " {
		switch {
		case unicode.IsSpace(r) && start >= 0:
			words = append(words, name{s[start:i], pos + token.Pos(start)})
			start = -1
		case !unicode.IsSpace(r) && start < 0:
			start = i
		}
	}
	return words
}

// splitComma returns the comma-separated parts of w.
func splitComma(w name) []name {
	var parts []name
	off := 0
	for _, p := range strings.Split(w.text, ",") {
		parts = append(parts, name{p, w.pos + token.Pos(off)})
		off += len(p) + 1
	}
	return parts
}
