package gen

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/tools/go/packages"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*/expected.golden from the generator's output")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGoldenFiles generates each package under testdata/golden in-process,
// compares the output byte for byte with its expected.golden, and
// type-checks the package with the output in it.
func TestGoldenFiles(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			file, src, err := Generate(Options{Dir: dir})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if filepath.Base(file) != DefaultOutput || filepath.Base(filepath.Dir(file)) != filepath.Base(dir) {
				t.Errorf("output file %s, want %s in %s", file, DefaultOutput, dir)
			}
			golden := filepath.Join(dir, "expected.golden")
			if *update {
				if err := os.WriteFile(golden, src, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./gen -update to create it)", err)
			}
			if !bytes.Equal(src, want) {
				t.Errorf("output differs from %s (rerun with -update and review the diff):\n%s", golden, src)
			}
			typeCheckWith(t, file, src)
		})
	}
}

// typeCheckWith type-checks the package of file with src as file's
// contents: the generated code compiles against core.
func typeCheckWith(t *testing.T, file string, src []byte) {
	t.Helper()
	cfg := &packages.Config{
		Mode:    packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedFiles,
		Dir:     filepath.Dir(file),
		Overlay: map[string][]byte{file: src},
	}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		t.Fatal(err)
	}
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			t.Errorf("generated package does not compile: %v", e)
		}
	})
}

// TestExampleIsUpToDate regenerates examples/sched in-process and compares
// the result byte for byte with the committed generated file.
func TestExampleIsUpToDate(t *testing.T) {
	file, src, err := Generate(Options{Dir: "../examples/sched"})
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, committed) {
		t.Errorf("%s is stale: run go generate ./examples/sched", file)
	}
}

// TestGenerateIsDeterministic generates the same package twice.
func TestGenerateIsDeterministic(t *testing.T) {
	_, a, err := Generate(Options{Dir: "testdata/golden/grouped"})
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := Generate(Options{Dir: "testdata/golden/grouped"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two runs gave different output")
	}
}

// TestUserErrors runs the generator on each package under testdata/errors
// and checks every reported error, position and message, in order.
// Positions are relative to the case's directory ("." for the directory
// itself).
func TestUserErrors(t *testing.T) {
	cases := map[string][]string{
		"bad_endpoint": {
			`input.go:3:15: endpoint name "driver" is not an exported Go identifier`,
			`input.go:6:22: endpoint name "" is not an exported Go identifier`,
			`input.go:6:23: endpoint name "Dri-ver" is not an exported Go identifier`,
			`input.go:9:14: //rpcgen:ask names one endpoint, not "Driver,Executor"`,
			`input.go:12:1: //rpcgen:send names no endpoint (want //rpcgen:send E1[,E2...])`,
			`input.go:15:22: endpoint name "" is not an exported Go identifier`,
			`input.go:15:23: unexpected "Executor" after the endpoint list (want //rpcgen:send E1[,E2...], without spaces)`,
		},
		"bad_stream": {
			`input.go:3:1: //rpcgen:stream names no endpoint (want //rpcgen:stream E)`,
			`input.go:6:17: //rpcgen:stream names one endpoint, not "Driver,Executor"`,
			`input.go:9:24: //rpcgen:stream takes no reply type: the handler answers on the stream (want //rpcgen:stream E)`,
			`input.go:12:24: unexpected "window=64" after the endpoint (want //rpcgen:stream E)`,
			`input.go:15:24: unexpected "Executor" after the endpoint (want //rpcgen:stream E)`,
			`input.go:18:17: endpoint name "driver" is not an exported Go identifier`,
		},
		"duplicate_method": {
			`input.go:4:15: endpoint Driver already receives Ping (directive at line 3): each message generates one method per endpoint`,
			`input.go:7:31: endpoint Driver already receives Pong (directive at line 7): each message generates one method per endpoint`,
			`input.go:11:14: endpoint Driver already receives Pang (directive at line 10): each message generates one method per endpoint`,
		},
		"missing_reply": {
			`input.go:3:27: reply type Nope is not declared in package p (it must be a struct type of this package)`,
			`input.go:6:1: //rpcgen:ask Driver has no reply type (want //rpcgen:ask E reply=R)`,
			`input.go:9:21: reply= names no type`,
			`input.go:12:27: reply type fmt.Stringer is not declared in package p (it must be a struct type of this package)`,
		},
		"message_args": {
			`input.go:3:18: unexpected "Driver": //rpcgen:message takes no arguments`,
			`input.go:8:18: unexpected "reply=Job": //rpcgen:message takes no arguments`,
		},
		"misspelled_key": {
			`input.go:3:21: unknown or misspelled key "reply:Pong" (want reply=R)`,
			`input.go:6:21: unknown or misspelled key "rep=Pong" (want reply=R)`,
			`input.go:9:32: reply= given twice`,
			`input.go:12:22: unexpected "reply=Pong" after the endpoint list (want //rpcgen:send E1[,E2...], without spaces)`,
		},
		"name_collision": {
			`input.go:7:6: DriverRef collides with a name rpcgen generates for endpoint Driver; rename it or the endpoint`,
			`input.go:10:6: LookupDriver collides with a name rpcgen generates for endpoint Driver; rename it or the endpoint`,
			`input.go:12:5: driverEndpoint collides with a name rpcgen generates for endpoint Driver; rename it or the endpoint`,
			`input.go:14:5: fmt collides with the package the generated file imports as fmt; rename it`,
			`input.go:19:15: endpoints NewX and X would both generate NewXRef; rename one`,
		},
		"no_directives": {
			`.: package p has no //rpcgen:send, //rpcgen:ask, //rpcgen:stream or //rpcgen:message directives`,
		},
		"not_generated": {
			`rpcgen_gen.go: the file exists and was not generated by rpcgen; refusing to overwrite it`,
		},
		"not_struct": {
			`input.go:4:6: //rpcgen directive on Count, which is not a struct type`,
			`input.go:7:6: //rpcgen directive on Handler, which is not a struct type`,
			`input.go:10:6: //rpcgen directive on alias Alias: put it on the type the alias names`,
			`input.go:15:6: //rpcgen directive on generic type Box: message types must not have type parameters`,
		},
		"ref_message": {
			`input.go:3:15: message type Ref would generate the method DriverRef.Ref, which collides with the accessor DriverRef.Ref(); rename the type`,
		},
		"reply_not_struct": {
			`input.go:3:27: reply type Count is not a struct type`,
			`input.go:8:27: reply type answer is unexported: handlers outside the package could not name it`,
			`input.go:13:27: reply=Handle does not name a type`,
			`input.go:18:27: reply type Box has type parameters: reply types must not be generic`,
		},
		"stream_collision": {
			`input.go:6:15: the stream message Logs and the message OpenLogs would both generate the method DriverRef.OpenLogs (directive at line 3); rename one`,
			`input.go:12:17: the stream message Tail and the message OpenTail would both generate the method DriverRef.OpenTail (directive at line 9); rename one`,
			`input.go:16:15: endpoint Driver already receives Ping (directive at line 15): each message generates one method per endpoint`,
			`input.go:20:6: //rpcgen directive on Count, which is not a struct type`,
			`input.go:23:6: //rpcgen directive on unexported type upload: message types must be exported`,
		},
		"type_error": {
			`input.go:5:8: undefined: Undefined`,
		},
		"unattached": {
			`input.go:3:1: //rpcgen:send is not in the doc comment of a type declaration`,
			`input.go:6:1: //rpcgen:send is not in the doc comment of a type declaration`,
			`input.go:9:20: //rpcgen:send is not in the doc comment of a type declaration`,
			`input.go:11:1: //rpcgen:send is not in the doc comment of a type declaration`,
			`input.go:17:2: //rpcgen:send is not in the doc comment of a type declaration`,
		},
		"unexported": {
			`input.go:4:6: //rpcgen directive on unexported type ping: message types must be exported`,
		},
		"unknown_directive": {
			`input.go:3:1: unknown directive "//rpcgen:sned" (want //rpcgen:send, //rpcgen:ask, //rpcgen:stream or //rpcgen:message)`,
			`input.go:6:1: unknown directive "//rpcgen:asks" (want //rpcgen:send, //rpcgen:ask, //rpcgen:stream or //rpcgen:message)`,
			`input.go:9:1: unknown directive "//rpcgen:streams" (want //rpcgen:send, //rpcgen:ask, //rpcgen:stream or //rpcgen:message)`,
		},
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, err := filepath.Abs(filepath.Join("testdata/errors", name))
			if err != nil {
				t.Fatal(err)
			}
			file, src, err := Generate(Options{Dir: dir})
			if file != "" || src != nil {
				t.Errorf("Generate returned output %q with errors", file)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Generate: %v, want an ErrorList", err)
			}
			var got []string
			for _, e := range list {
				rel, err := filepath.Rel(dir, e.Pos.Filename)
				if err != nil {
					t.Fatal(err)
				}
				e.Pos.Filename = rel
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	dirs, _ := filepath.Glob("testdata/errors/*")
	for _, dir := range dirs {
		if _, ok := cases[filepath.Base(dir)]; !ok {
			t.Errorf("%s has no expected errors in TestUserErrors", dir)
		}
	}
}
