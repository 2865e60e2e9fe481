package gen

import (
	"fmt"
	"go/types"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/rpcenv/rpcenv/cborgen"
)

// Generated codecs: for each registered type that allows it, and the
// struct types of the package it contains, rpcgen emits AppendRPC,
// DecodeRPC and ReadRPC, which write and read the type's CBOR without
// reflection, in exactly the bytes the library codec writes (package
// cborgen). core.RegisterMessage finds and uses them.

const cborgenPath = "github.com/rpcenv/rpcenv/cborgen"

// codecMethods are the methods through which the library could encode
// or decode a type its own way: a type with any of them, on T or *T,
// keeps the library's codec. So does a type that declares one of the
// generated methods itself.
var codecMethods = []string{
	"MarshalCBOR", "UnmarshalCBOR",
	"MarshalBinary", "UnmarshalBinary", "AppendBinary",
	"MarshalText", "UnmarshalText", "AppendText",
	"MarshalJSON", "UnmarshalJSON",
	"AppendRPC", "DecodeRPC", "ReadRPC",
}

// codecField is one field of a struct with a generated codec.
type codecField struct {
	name string     // the Go field name
	key  string     // its encoded map key: text head and name
	typ  types.Type // its type
}

// codecStruct is a struct type of the package with a generated codec.
type codecStruct struct {
	name   string
	fields []codecField // in the order of their encoded keys
}

// planCodecs returns the struct types of pkg to generate codecs for: the
// roots (registered message and reply types) and the package's struct
// types they contain, each whose fields all have a generated encoding.
// The others keep the library's codec.
func planCodecs(pkg *types.Package, roots []string) ([]codecStruct, *planner) {
	p := &planner{pkg: pkg, structs: map[*types.Named]*codecStruct{}, bad: map[*types.Named]bool{}}
	for _, name := range roots {
		if tn, ok := pkg.Scope().Lookup(name).(*types.TypeName); ok {
			if n, ok := types.Unalias(tn.Type()).(*types.Named); ok {
				p.visit(n)
			}
		}
	}
	// A struct that contains one without a codec has none either; repeat
	// until nothing changes (structs may contain each other).
	for changed := true; changed; {
		changed = false
		for n, cs := range p.structs {
			if p.bad[n] {
				continue
			}
			for _, f := range cs.fields {
				if !p.encodable(f.typ) {
					p.bad[n], changed = true, true
					break
				}
			}
		}
	}
	var out []codecStruct
	for n, cs := range p.structs {
		if !p.bad[n] {
			out = append(out, *cs)
		}
	}
	slices.SortFunc(out, func(a, b codecStruct) int { return strings.Compare(a.name, b.name) })
	return out, p
}

type planner struct {
	depth   int // of the slices and maps being read, for the names of their loops
	pkg     *types.Package
	structs map[*types.Named]*codecStruct
	bad     map[*types.Named]bool
}

// visit records n, a struct type of the package, and the package's
// struct types its fields contain; bad marks those that cannot have a
// codec for a reason of their own.
func (p *planner) visit(n *types.Named) {
	if _, seen := p.structs[n]; seen || p.bad[n] {
		return
	}
	st, ok := n.Underlying().(*types.Struct)
	if !ok || n.Obj().Pkg() != p.pkg || n.TypeParams().Len() > 0 || hasCodecMethod(n) {
		p.bad[n] = true
		return
	}
	cs := &codecStruct{name: n.Obj().Name()}
	p.structs[n] = cs
	keys := map[string]bool{}
	for i := range st.NumFields() {
		f := st.Field(i)
		if f.Embedded() || f.Name() == "_" {
			p.bad[n] = true // the library's field promotion and struct options are not reproduced
			return
		}
		if !f.Exported() {
			continue
		}
		tag := reflect.StructTag(st.Tag(i)).Get("cbor")
		if tag == "" {
			tag = reflect.StructTag(st.Tag(i)).Get("json")
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts != "" || keys[cmpOr(name, f.Name())] {
			p.bad[n] = true // omitempty, keyasint and the like; or two fields with one key
			return
		}
		name = cmpOr(name, f.Name())
		keys[name] = true
		cs.fields = append(cs.fields, codecField{name: f.Name(), key: string(cborgen.AppendString(nil, name)), typ: f.Type()})
		p.visitType(f.Type())
	}
	sort.Slice(cs.fields, func(i, j int) bool { return cs.fields[i].key < cs.fields[j].key })
}

// visitType visits the package's struct types that t contains.
func (p *planner) visitType(t types.Type) {
	switch t := types.Unalias(t).(type) {
	case *types.Named:
		if _, ok := t.Underlying().(*types.Struct); ok && t.Obj().Pkg() == p.pkg {
			p.visit(t)
		}
	case *types.Pointer:
		p.visitType(t.Elem())
	case *types.Slice:
		p.visitType(t.Elem())
	case *types.Map:
		p.visitType(t.Key())
		p.visitType(t.Elem())
	}
}

// kind is how a type is encoded.
type encKind int

const (
	kNone encKind = iota // no generated encoding
	kBool
	kInt
	kUint
	kFloat32
	kFloat64
	kString
	kBytes
	kTime
	kRef
	kStruct
	kPointer
	kSlice
	kMap
)

// kindOf says how t is encoded, and for integers how many bits it has
// (0: the platform's int size).
func (p *planner) kindOf(t types.Type) (encKind, int) {
	t = types.Unalias(t)
	if n, ok := t.(*types.Named); ok {
		obj := n.Obj()
		switch {
		case obj.Pkg() != nil && obj.Pkg().Path() == "time" && obj.Name() == "Time":
			return kTime, 0
		case obj.Pkg() == p.pkg && isStructType(n):
			if _, ok := p.structs[n]; ok && !p.bad[n] {
				return kStruct, 0
			}
			return kNone, 0
		case hasCodecMethod(n):
			return kNone, 0
		}
		if _, ok := n.Underlying().(*types.Basic); !ok {
			return kNone, 0 // named slices and maps: not reproduced
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch u.Kind() {
		case types.Bool:
			return kBool, 0
		case types.Int:
			return kInt, 0
		case types.Int8:
			return kInt, 8
		case types.Int16:
			return kInt, 16
		case types.Int32:
			return kInt, 32
		case types.Int64:
			return kInt, 64
		case types.Uint:
			return kUint, 0
		case types.Uint8:
			return kUint, 8
		case types.Uint16:
			return kUint, 16
		case types.Uint32:
			return kUint, 32
		case types.Uint64:
			return kUint, 64
		case types.Float32:
			return kFloat32, 0
		case types.Float64:
			return kFloat64, 0
		case types.String:
			return kString, 0
		}
	case *types.Pointer:
		if n, ok := types.Unalias(u.Elem()).(*types.Named); ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == corePath && n.Obj().Name() == "Ref" {
			return kRef, 0
		}
		if k, _ := p.kindOf(u.Elem()); k == kNone || k == kPointer || k == kSlice || k == kMap || k == kRef {
			return kNone, 0
		}
		return kPointer, 0
	case *types.Slice:
		if b, ok := types.Unalias(u.Elem()).(*types.Basic); ok && b.Kind() == types.Uint8 {
			return kBytes, 0
		}
		if p.encodable(u.Elem()) {
			return kSlice, 0
		}
	case *types.Map:
		if k, _ := p.kindOf(u.Key()); (k == kString || k == kInt || k == kUint) && p.encodable(u.Elem()) {
			return kMap, 0
		}
	}
	return kNone, 0
}

func (p *planner) encodable(t types.Type) bool {
	k, _ := p.kindOf(t)
	return k != kNone
}

func isStructType(n *types.Named) bool {
	_, ok := n.Underlying().(*types.Struct)
	return ok
}

// hasCodecMethod reports whether T or *T has one of codecMethods.
func hasCodecMethod(n *types.Named) bool {
	ms := types.NewMethodSet(types.NewPointer(n))
	for _, m := range codecMethods {
		if ms.Lookup(nil, m) != nil {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// emitCodecs emits the methods of each struct in cs.
func emitCodecs(f *jen.File, p *planner, cs []codecStruct) {
	for _, c := range cs {
		mapHead := cborgen.AppendMapHead(nil, len(c.fields))

		f.Comment("AppendRPC appends m's CBOR encoding to b: the bytes that core's")
		f.Comment("codec writes for it, without reflection (see package cborgen). It")
		f.Comment("fails where that codec fails (a time outside years 0-9999).")
		f.Func().Params(jen.Id("m").Id(c.name)).Id("AppendRPC").Params(jen.Id("b").Index().Byte()).Params(jen.Index().Byte(), jen.Error()).BlockFunc(func(g *jen.Group) {
			for _, fd := range c.fields {
				if p.fallible(fd.typ) {
					g.Var().Id("err").Error()
					break
				}
			}
			g.Id("b").Op("=").Append(jen.Id("b"), jen.Lit(string(mapHead)).Op("..."))
			for _, fd := range c.fields {
				g.Id("b").Op("=").Append(jen.Id("b"), jen.Lit(fd.key).Op("..."))
				p.encode(g, jen.Id("m").Dot(fd.name), fd.typ)
			}
			g.Return(jen.Id("b"), jen.Nil())
		})

		f.Comment("DecodeRPC decodes data, as AppendRPC writes it, into m. It reports")
		f.Comment("false, having written part of m, for anything else; core's codec")
		f.Comment("then decodes data instead.")
		f.Func().Params(jen.Id("m").Op("*").Id(c.name)).Id("DecodeRPC").Params(jen.Id("data").Index().Byte()).Bool().Block(
			jen.Id("r").Op(":=").Qual(cborgenPath, "NewReader").Call(jen.Id("data")),
			jen.Id("m").Dot("ReadRPC").Call(jen.Op("&").Id("r")),
			jen.Return(jen.Id("r").Dot("Done").Call()),
		)

		f.Comment("ReadRPC reads m from r, as AppendRPC writes it, and fails r for")
		f.Comment("anything else.")
		f.Func().Params(jen.Id("m").Op("*").Id(c.name)).Id("ReadRPC").Params(jen.Id("r").Op("*").Qual(cborgenPath, "Reader")).BlockFunc(func(g *jen.Group) {
			g.If(jen.Id("r").Dot("MapHead").Call().Op("!=").Lit(len(c.fields))).Block(
				jen.Id("r").Dot("Fail").Call(),
				jen.Return(),
			)
			for _, fd := range c.fields {
				g.Id("r").Dot("Key").Call(jen.Lit(fd.key))
				p.decode(g, jen.Id("m").Dot(fd.name), fd.typ)
			}
			g.Id("r").Dot("End").Call()
		})
	}
}

// typeCode is t as Go source in the generated file.
func (p *planner) typeCode(t types.Type) jen.Code {
	switch t := t.(type) {
	case *types.Alias:
		return p.typeCode(types.Unalias(t))
	case *types.Basic:
		return jen.Id(t.Name())
	case *types.Named:
		if t.Obj().Pkg() == p.pkg {
			return jen.Id(t.Obj().Name())
		}
		return jen.Qual(t.Obj().Pkg().Path(), t.Obj().Name())
	case *types.Pointer:
		return jen.Op("*").Add(p.typeCode(t.Elem()))
	case *types.Slice:
		return jen.Index().Add(p.typeCode(t.Elem()))
	case *types.Map:
		return jen.Map(p.typeCode(t.Key())).Add(p.typeCode(t.Elem()))
	}
	panic("rpcgen: no source for type " + t.String()) // kindOf admits none other
}

// intSize is the argument of Reader.Int and Reader.Uint for bits (0:
// the platform's int size).
func intSize(bits int) jen.Code { return jen.Lit(bits) }

// conv converts v to the basic type named basic, unless it is of that
// type already.
func conv(basic string, v jen.Code, t types.Type) jen.Code {
	if b, ok := types.Unalias(t).(*types.Basic); ok && b.Name() == basic {
		return v
	}
	return jen.Id(basic).Call(v)
}

// fallible reports whether encoding a t can fail: it holds a time.Time,
// or a struct that may.
func (p *planner) fallible(t types.Type) bool {
	k, _ := p.kindOf(t)
	switch k {
	case kTime, kStruct, kSlice, kMap: // slices and maps: their element functions return errors
		return true
	case kPointer:
		return p.fallible(types.Unalias(t).Underlying().(*types.Pointer).Elem())
	}
	return false
}

// encode appends to g the statements that append v, of type t, to b. A
// statement that can fail returns b and the error; the function around
// it declares err (see fallible).
func (p *planner) encode(g *jen.Group, v jen.Code, t types.Type) {
	b := jen.Id("b")
	set := func(fn string, args ...jen.Code) {
		g.Id("b").Op("=").Qual(cborgenPath, fn).Call(append([]jen.Code{b}, args...)...)
	}
	try := func(g *jen.Group, call jen.Code) {
		g.If(jen.List(jen.Id("b"), jen.Id("err")).Op("=").Add(call), jen.Id("err").Op("!=").Nil()).Block(
			jen.Return(jen.Id("b"), jen.Id("err")),
		)
	}
	k, _ := p.kindOf(t)
	switch k {
	case kBool:
		set("AppendBool", conv("bool", v, t))
	case kInt:
		set("AppendInt", conv("int64", v, t))
	case kUint:
		set("AppendUint", conv("uint64", v, t))
	case kFloat32:
		set("AppendFloat32", conv("float32", v, t))
	case kFloat64:
		set("AppendFloat64", conv("float64", v, t))
	case kString:
		set("AppendString", conv("string", v, t))
	case kBytes:
		set("AppendBytes", v)
	case kTime:
		try(g, jen.Qual(cborgenPath, "AppendTime").Call(b, v))
	case kRef:
		g.Id("b").Op("=").Qual(corePath, "AppendRef").Call(b, v)
	case kStruct:
		try(g, jen.Add(v).Dot("AppendRPC").Call(b))
	case kPointer:
		elem := types.Unalias(t).Underlying().(*types.Pointer).Elem()
		g.If(jen.Add(v).Op("==").Nil()).Block(
			jen.Id("b").Op("=").Qual(cborgenPath, "AppendNull").Call(b),
		).Else().BlockFunc(func(g *jen.Group) {
			if ek, _ := p.kindOf(elem); ek == kStruct {
				try(g, jen.Add(v).Dot("AppendRPC").Call(b)) // a value method, through the pointer
			} else {
				p.encode(g, jen.Op("*").Add(v), elem)
			}
		})
	case kSlice:
		elem := types.Unalias(t).Underlying().(*types.Slice).Elem()
		try(g, jen.Qual(cborgenPath, "AppendSlice").Call(b, v, p.elemFunc("e", elem)))
	case kMap:
		m := types.Unalias(t).Underlying().(*types.Map)
		try(g, jen.Qual(cborgenPath, "AppendMap").Call(b, v, p.keyFunc(m.Key()), p.elemFunc("e", m.Elem())))
	}
}

// keyFunc is a func(b []byte, k K) []byte that appends a map key.
func (p *planner) keyFunc(t types.Type) jen.Code {
	return jen.Func().Params(jen.Id("b").Index().Byte(), jen.Id("k").Add(p.typeCode(t))).Index().Byte().BlockFunc(func(g *jen.Group) {
		p.encode(g, jen.Id("k"), t)
		g.Return(jen.Id("b"))
	})
}

// elemFunc is a func(b []byte, name T) ([]byte, error) that appends its
// argument.
func (p *planner) elemFunc(name string, t types.Type) jen.Code {
	return jen.Func().Params(jen.Id("b").Index().Byte(), jen.Id(name).Add(p.typeCode(t))).Params(jen.Index().Byte(), jen.Error()).BlockFunc(func(g *jen.Group) {
		if p.fallible(t) {
			g.Var().Id("err").Error()
		}
		p.encode(g, jen.Id(name), t)
		g.Return(jen.Id("b"), jen.Nil())
	})
}

// decode appends to g the statements that read target, an addressable
// value of type t, from r.
func (p *planner) decode(g *jen.Group, target jen.Code, t types.Type) {
	r := jen.Id("r")
	call := func(fn string, args ...jen.Code) *jen.Statement { return jen.Add(r).Dot(fn).Call(args...) }
	assign := func(v jen.Code) { g.Add(target).Op("=").Add(v) }
	// as converts v, of the basic type basic, to t if t is another type.
	as := func(v jen.Code, basic string) jen.Code {
		if b, ok := types.Unalias(t).(*types.Basic); ok && b.Name() == basic {
			return v
		}
		return jen.Add(p.typeCode(t)).Call(v)
	}
	k, bits := p.kindOf(t)
	switch k {
	case kBool:
		assign(as(call("Bool"), "bool"))
	case kInt:
		assign(as(call("Int", intSize(bits)), "int64"))
	case kUint:
		assign(as(call("Uint", intSize(bits)), "uint64"))
	case kFloat32:
		assign(as(call("Float32"), "float32"))
	case kFloat64:
		assign(as(call("Float64"), "float64"))
	case kString:
		assign(as(call("String"), "string"))
	case kBytes:
		assign(call("Bytes"))
	case kTime:
		assign(call("Time"))
	case kRef:
		assign(jen.Qual(corePath, "ReadRef").Call(r))
	case kStruct:
		g.Add(target).Dot("ReadRPC").Call(r)
	case kPointer:
		elem := types.Unalias(t).Underlying().(*types.Pointer).Elem()
		g.If(call("Null")).Block(
			jen.Add(target).Op("=").Nil(),
		).Else().BlockFunc(func(g *jen.Group) {
			g.Add(target).Op("=").New(p.typeCode(elem))
			if ek, _ := p.kindOf(elem); ek == kStruct {
				g.Add(target).Dot("ReadRPC").Call(r)
			} else {
				p.decode(g, jen.Op("*").Add(target), elem)
			}
		})
	case kSlice, kMap:
		// Read inline, not through cborgen.ReadSlice and ReadMap: a
		// Reader handed to a func value escapes, which would cost every
		// decode an allocation. Names carry the depth, so that nested
		// loops do not shadow the indices their targets use.
		p.depth++
		defer func() { p.depth-- }()
		n := jen.Id(fmt.Sprintf("n%d", p.depth))
		g.If(call("Null")).Block(
			jen.Add(target).Op("=").Nil(),
		).Else().If(jen.Add(n).Op(":=").Add(call(map[bool]string{true: "ArrayHead", false: "MapHead"}[k == kSlice])), jen.Add(n).Op(">=").Lit(0)).BlockFunc(func(g *jen.Group) {
			if k == kSlice {
				elem := types.Unalias(t).Underlying().(*types.Slice).Elem()
				i := jen.Id(fmt.Sprintf("i%d", p.depth))
				g.Add(target).Op("=").Make(p.typeCode(t), n)
				g.For(jen.Add(i).Op(":=").Range().Add(target)).BlockFunc(func(g *jen.Group) {
					p.decode(g, jen.Add(target).Index(i), elem)
				})
			} else {
				m := types.Unalias(t).Underlying().(*types.Map)
				key, val := jen.Id(fmt.Sprintf("k%d", p.depth)), jen.Id(fmt.Sprintf("e%d", p.depth))
				g.Add(target).Op("=").Make(p.typeCode(t), n)
				g.For(jen.Range().Add(n)).BlockFunc(func(g *jen.Group) {
					g.Var().Add(key).Add(p.typeCode(m.Key()))
					p.decode(g, key, m.Key())
					g.Var().Add(val).Add(p.typeCode(m.Elem()))
					p.decode(g, val, m.Elem())
					g.If(jen.List(jen.Id("_"), jen.Id("dup")).Op(":=").Add(target).Index(key), jen.Id("dup").Op("||").Add(r).Dot("Failed").Call()).Block(
						jen.Add(r).Dot("Fail").Call(), // a duplicate key, as the library refuses it
						jen.Break(),
					)
					g.Add(target).Index(key).Op("=").Add(val)
				})
			}
			g.Add(r).Dot("End").Call()
		})
	}
}
