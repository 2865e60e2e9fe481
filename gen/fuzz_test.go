package gen

import (
	"go/ast"
	"go/token"
	"testing"
)

// FuzzParseDirective checks that no directive text makes the parser
// panic, and that what it accepts is well formed.
func FuzzParseDirective(f *testing.F) {
	for _, s := range []string{"send Driver", "send A,B", "ask Driver reply=R", "ask D reply=", "sned X", "send ,", "ask A,B reply=R reply=S", "send \u00e9", "stream Driver", "stream A,B", "stream D reply=R", "stream D x", "stream", "streams X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := &errs{fset: token.NewFileSet()}
		d, ok := parseDirective(&ast.Comment{Slash: 1, Text: prefix + s}, e)
		if ok != (len(e.list) == 0) {
			t.Fatalf("ok %v with errors %v", ok, e.list)
		}
		if !ok {
			return
		}
		if len(d.endpoints) == 0 || (d.kind != kindSend && len(d.endpoints) != 1) || (d.kind == kindAsk) != (d.reply.text != "") {
			t.Fatalf("accepted %q as %+v", s, d)
		}
		for _, ep := range d.endpoints {
			if !token.IsIdentifier(ep.text) || !token.IsExported(ep.text) {
				t.Fatalf("accepted endpoint %q", ep.text)
			}
		}
	})
}
