// Command rpcgen generates typed endpoint refs and handlers for the Go
// message structs of a package annotated with //rpcgen:send,
// //rpcgen:ask and //rpcgen:stream directives (see package gen for the
// grammar and the output).
//
// Usage:
//
//	rpcgen [-output file] [dir]
//
// dir is the package directory (default: the current one, as go generate
// runs it); the output goes to the file named by -output inside it
// (default rpcgen_gen.go). On mistakes rpcgen prints them as
// file:line:col: message, exits with status 1 and writes nothing. The
// usual way to run it is a line in the package:
//
//	//go:generate go run github.com/rpcenv/rpcenv/cmd/rpcgen
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rpcenv/rpcenv/gen"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run is the command with its arguments; it returns the exit status.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rpcgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", gen.DefaultOutput, "name of the generated file, inside the package directory")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rpcgen [-output file] [dir]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	file, src, err := gen.Generate(gen.Options{Dir: fs.Arg(0), Output: *output})
	if err == nil {
		err = os.WriteFile(file, src, 0o644)
	}
	var list gen.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			e.Pos.Filename = relative(e.Pos.Filename)
			fmt.Fprintln(stderr, e)
		}
		return 1
	case err != nil:
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// relative makes path relative to the working directory when that is
// shorter, as the Go compiler prints positions.
func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || len(rel) >= len(path) {
		return path
	}
	return rel
}
