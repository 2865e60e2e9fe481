package gen

import (
	"go/ast"
	"go/token"
	"go/types"
	"slices"
	"strings"

	"golang.org/x/tools/go/packages"
)

// message is one method of an endpoint: a send, an ask with a reply, or
// a stream's opening message.
type message struct {
	typ    string // the message's Go type, in the package
	reply  string // the reply's Go type; "" for a send or a stream
	stream bool   // //rpcgen:stream
}

// refMethod is the name of m's method on the typed ref.
func (m message) refMethod() string {
	if m.stream {
		return "Open" + m.typ
	}
	return m.typ
}

// endpoint is what the directives say one endpoint receives.
type endpoint struct {
	name string
	msgs []message // sorted by typ
}

// model is everything emit needs, in a deterministic order.
type model struct {
	pkgPath, pkgName string
	endpoints        []endpoint // sorted by name
	types            []string   // types to register, sorted, each once
	codecs           []codecStruct
	planner          *planner // what the codecs' emission needs
}

// names are the identifiers generated for endpoint E.
type names struct {
	ref, newRef, lookup, handler, newEndpoint, impl string
}

func namesFor(ep string) names {
	return names{
		ref:         ep + "Ref",
		newRef:      "New" + ep + "Ref",
		lookup:      "Lookup" + ep,
		handler:     ep + "Handler",
		newEndpoint: "New" + ep + "Endpoint",
		impl:        strings.ToLower(ep[:1]) + ep[1:] + "Endpoint",
	}
}

func (n names) all() []string {
	return []string{n.ref, n.newRef, n.lookup, n.handler, n.newEndpoint, n.impl}
}

// imports are the names the generated file imports, so the package may
// not declare them.
var imports = []string{"context", "fmt", "core", "cborgen"}

// check reads the directives of pkg, checks them against its types and
// returns what to generate, or an ErrorList.
func check(pkg *packages.Package) (*model, error) {
	e := &errs{fset: pkg.Fset}
	scope := pkg.Types.Scope()
	byEndpoint := map[string]map[string]message{}
	declaredAt := map[string]map[string]token.Pos{} // endpoint → message type → directive
	refMethods := map[string]map[string]message{}   // endpoint → method of its ref → message
	registered := map[string]bool{}
	for _, f := range pkg.Syntax {
		attached := map[*ast.Comment]bool{}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && !gd.Lparen.IsValid() {
					doc = gd.Doc // type X struct{...}: the doc sits on the declaration
				}
				var dirs []*ast.Comment
				for _, c := range commentsOf(doc) {
					if isDirective(c) {
						dirs = append(dirs, c)
						attached[c] = true
					}
				}
				if len(dirs) == 0 {
					continue
				}
				typeOK := checkMessageType(ts, scope, e)
				for _, c := range dirs {
					d, ok := parseDirective(c, e)
					if !ok || !typeOK || (d.kind == kindAsk && !checkReply(d.reply, pkg.Types, e)) {
						continue
					}
					if d.kind == kindMessage {
						registered[ts.Name.Name] = true // a message type of no endpoint: registered, with its codec
						continue
					}
					m := message{typ: ts.Name.Name, reply: d.reply.text, stream: d.kind == kindStream}
					for _, ep := range d.endpoints {
						if declaredAt[ep.text] == nil {
							declaredAt[ep.text] = map[string]token.Pos{}
							byEndpoint[ep.text] = map[string]message{}
							refMethods[ep.text] = map[string]message{}
						}
						if prev, dup := declaredAt[ep.text][m.typ]; dup {
							e.add(ep.pos, "endpoint %s already receives %s (directive at line %d): each message generates one method per endpoint", ep.text, m.typ, e.fset.Position(prev).Line)
							continue
						}
						ref := namesFor(ep.text).ref
						if m.refMethod() == "Ref" {
							e.add(ep.pos, "message type Ref would generate the method %s.Ref, which collides with the accessor %s.Ref(); rename the type", ref, ref)
							continue
						}
						if other, clash := refMethods[ep.text][m.refMethod()]; clash {
							// Only a stream X and a send or ask OpenX can clash.
							st, plain := m, other
							if other.stream {
								st, plain = other, m
							}
							e.add(ep.pos, "the stream message %s and the message %s would both generate the method %s.%s (directive at line %d); rename one", st.typ, plain.typ, ref, m.refMethod(), e.fset.Position(declaredAt[ep.text][other.typ]).Line)
							continue
						}
						declaredAt[ep.text][m.typ] = ep.pos
						byEndpoint[ep.text][m.typ] = m
						refMethods[ep.text][m.refMethod()] = m
					}
					registered[m.typ] = true
					if m.reply != "" {
						registered[m.reply] = true
					}
				}
			}
		}
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				if isDirective(c) && !attached[c] {
					e.add(c.Slash, "%s is not in the doc comment of a type declaration", strings.Fields(c.Text)[0])
				}
			}
		}
	}

	m := &model{pkgPath: pkg.PkgPath, pkgName: pkg.Name}
	for _, ep := range sortedKeys(byEndpoint) {
		m.endpoints = append(m.endpoints, endpoint{name: ep, msgs: sortedValues(byEndpoint[ep])})
	}
	m.types = sortedKeys(registered)
	checkCollisions(m, scope, declaredAt, e)
	if pkg.Name == "rpcenv" && len(pkg.Syntax) > 0 {
		e.add(pkg.Syntax[0].Name.Pos(), "package name rpcenv would give wire names starting with \"rpcenv.\", which core reserves")
	}
	return m, e.sorted()
}

func commentsOf(cg *ast.CommentGroup) []*ast.Comment {
	if cg == nil {
		return nil
	}
	return cg.List
}

// checkMessageType reports whether ts can carry directives: an exported,
// non-generic struct type that is not an alias.
func checkMessageType(ts *ast.TypeSpec, scope *types.Scope, e *errs) bool {
	n := ts.Name.Name
	switch {
	case ts.Assign.IsValid():
		e.add(ts.Name.Pos(), "//rpcgen directive on alias %s: put it on the type the alias names", n)
	case !token.IsExported(n):
		e.add(ts.Name.Pos(), "//rpcgen directive on unexported type %s: message types must be exported", n)
	case ts.TypeParams != nil:
		e.add(ts.Name.Pos(), "//rpcgen directive on generic type %s: message types must not have type parameters", n)
	case !isStruct(scope.Lookup(n)):
		e.add(ts.Name.Pos(), "//rpcgen directive on %s, which is not a struct type", n)
	default:
		return true
	}
	return false
}

// checkReply reports whether r names an exported, non-generic struct type
// declared in pkg.
func checkReply(r name, pkg *types.Package, e *errs) bool {
	obj := pkg.Scope().Lookup(r.text)
	tn, isType := obj.(*types.TypeName)
	switch {
	case obj == nil:
		e.add(r.pos, "reply type %s is not declared in package %s (it must be a struct type of this package)", r.text, pkg.Name())
	case !isType:
		e.add(r.pos, "reply=%s does not name a type", r.text)
	case tn.IsAlias():
		e.add(r.pos, "reply type %s is an alias: name the type it stands for", r.text)
	case !token.IsExported(r.text):
		e.add(r.pos, "reply type %s is unexported: handlers outside the package could not name it", r.text)
	case isGeneric(tn):
		e.add(r.pos, "reply type %s has type parameters: reply types must not be generic", r.text)
	case !isStruct(obj):
		e.add(r.pos, "reply type %s is not a struct type", r.text)
	default:
		return true
	}
	return false
}

func isGeneric(tn *types.TypeName) bool {
	named, ok := tn.Type().(*types.Named)
	return ok && named.TypeParams().Len() > 0
}

func isStruct(obj types.Object) bool {
	tn, ok := obj.(*types.TypeName)
	if !ok {
		return false
	}
	_, ok = tn.Type().Underlying().(*types.Struct)
	return ok
}

// checkCollisions reports generated names that the package declares
// already or that two endpoints would both generate.
func checkCollisions(m *model, scope *types.Scope, declaredAt map[string]map[string]token.Pos, e *errs) {
	for _, n := range imports {
		if obj := scope.Lookup(n); obj != nil {
			e.add(obj.Pos(), "%s collides with the package the generated file imports as %s; rename it", n, n)
		}
	}
	owner := map[string]string{}
	for _, ep := range m.endpoints {
		for _, n := range namesFor(ep.name).all() {
			if obj := scope.Lookup(n); obj != nil {
				e.add(obj.Pos(), "%s collides with a name rpcgen generates for endpoint %s; rename it or the endpoint", n, ep.name)
			}
			if other, dup := owner[n]; dup {
				e.add(slices.Min(sortedValues(declaredAt[ep.name])), "endpoints %s and %s would both generate %s; rename one", other, ep.name, n)
			}
			owner[n] = ep.name
		}
	}
}
