// Package peertest is test support for the transports: shared env and
// endpoint helpers (helpers.go), the two-process tests (process.go), and
// what they need of the other process: the child program (peertest/peer),
// StartChild, which builds and runs it, and the messages both sides
// exchange, registered under the same wire names in both programs, which
// is what lets them cross.
package peertest

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// Echo is answered with itself by the child's "echo" endpoint, and is
// what the child sends to a ref it was given.
type Echo struct {
	N int
	S string
}

// Carry carries a ref. Asked to "echo", the child sends Echo{N, "back"} to
// Ref and replies with a Carry holding a ref to itself. Asked to "hang",
// the child sends Echo{N, "hanging"} to Ref and never answers.
type Carry struct {
	Ref *core.Ref
	N   int
}

func init() {
	core.RegisterMessage[Echo]("peertest.Echo")
	core.RegisterMessage[Carry]("peertest.Carry")
}

// Child is the peer program running as a child process.
type Child struct {
	Cmd    *exec.Cmd
	Addr   string // its env's URI
	Stdin  io.WriteCloser
	Stderr *Buffer
}

// Buffer is a bytes.Buffer safe for concurrent use.
type Buffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // closed at the next Write; nil when no one waits
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wrote != nil {
		close(l.wrote)
		l.wrote = nil
	}
	return l.b.Write(p)
}

// Contains reports whether s has been written and, if not, returns a
// channel closed at the next Write.
func (l *Buffer) Contains(s string) (bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(l.b.String(), s) {
		return true, nil
	}
	if l.wrote == nil {
		l.wrote = make(chan struct{})
	}
	return false, l.wrote
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wait bounds StartChild's wait for the child's address; reaching it
// means the test failed.
const wait = 60 * time.Second

// StartChild builds the peer program, starts it on transport ("tcp" or
// "quic") with args, and waits for the address it prints. The child is
// killed and waited for when the test ends, whatever happened.
func StartChild(t *testing.T, transport string, args ...string) *Child {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command to build the child program: %v", err)
	}
	_, here, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "peer")
	build := exec.Command("go", "build", "-o", bin, "./peer")
	build.Dir = filepath.Dir(here)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build peertest/peer: %v\n%s", err, out)
	}
	c := &Child{Cmd: exec.Command(bin, append([]string{"-transport", transport}, args...)...), Stderr: &Buffer{}}
	c.Cmd.Stderr = c.Stderr
	var err error
	if c.Stdin, err = c.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("start the child: %v", err)
	}
	t.Cleanup(func() {
		c.Cmd.Process.Kill() // SIGKILL works on a stopped process too
		c.Cmd.Wait()
		if t.Failed() {
			t.Logf("child's stderr:\n%s", c.Stderr)
		}
	})
	lines := make(chan string, 1)
	go func() { // ends when the child's stdout closes, at its death at the latest
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	var addr string
	select {
	case addr = <-lines:
	case <-time.After(wait):
		t.Fatalf("waited %v for the child's address on its stdout", wait)
	}
	if !strings.HasPrefix(addr, transport+"://127.0.0.1:") {
		t.Fatalf("the child printed %q, want its address; stderr:\n%s", addr, c.Stderr)
	}
	c.Addr = addr
	return c
}
