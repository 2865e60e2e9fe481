package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMistakesAreReportedAndNothingIsWritten runs the command on a package
// with a bad directive: it prints the position and message, exits with 1
// and writes no file.
func TestMistakesAreReportedAndNothingIsWritten(t *testing.T) {
	dir := "../../gen/testdata/errors/unknown_directive"
	var stderr bytes.Buffer
	if code := run([]string{dir}, &stderr); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	want := filepath.Join(dir, "input.go") + `:3:1: unknown directive "//rpcgen:sned"`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant a line starting %s", stderr.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "rpcgen_gen.go")); !os.IsNotExist(err) {
		t.Errorf("an output file was written (stat: %v)", err)
	}
}

// TestBadUsageExitsWith2 checks the usage errors.
func TestBadUsageExitsWith2(t *testing.T) {
	for _, args := range [][]string{{"a", "b"}, {"-nosuchflag"}} {
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 2 {
			t.Errorf("rpcgen %q: exit status %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "usage: rpcgen") {
			t.Errorf("rpcgen %q: no usage in stderr:\n%s", args, stderr.String())
		}
	}
}

// TestBadOutputNameIsRefused checks that -output must name a .go file in
// the package directory.
func TestBadOutputNameIsRefused(t *testing.T) {
	for _, out := range []string{"../x.go", "x.txt", "x_test.go"} {
		var stderr bytes.Buffer
		if code := run([]string{"-output", out, "../../examples/sched"}, &stderr); code != 1 {
			t.Errorf("-output %s: exit status %d, want 1", out, code)
		}
	}
}
