package quic_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/internal/peertest"
	"github.com/rpcenv/rpcenv/transports/quic"
)

// The restart tests kill a server with SIGKILL, so that it sends nothing
// on its way out (no CONNECTION_CLOSE: the kernel closes its socket), and
// start another on the same port. The server is this test binary run
// again with serverVar set (TestMain): killing a process is the one way to
// be sure that nothing of the old server answers any more.

// serverVar holds a serverSpec, in JSON, in the environment of a server.
const serverVar = "RPCENV_QUIC_TEST_SERVER"

// serverSpec says what a server process runs.
type serverSpec struct {
	// Env: an env with an "echo" endpoint. Otherwise a bare listener
	// that writes back every frame it reads.
	Env  bool
	Addr string // host:port to listen on
	Key  []byte // Options.StatelessResetKey
	// Cert and PrivateKey (DER, PKCS #8) make Options.TLS.
	Cert, PrivateKey []byte
}

// server is a server process.
type server struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // the server exits when it closes; kill never does
	addr   string         // host:port it listens on
	stderr *peertest.Buffer
	once   sync.Once
}

// startServer runs a server process with spec and waits for the address
// it listens on. It is killed when the test ends, if not before.
func startServer(t *testing.T, spec serverSpec) *server {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot run the test binary again: %v", err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: exec.Command(exe), stderr: &peertest.Buffer{}}
	s.cmd.Env = append(os.Environ(), serverVar+"="+string(js))
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.kill() })
	line := make(chan string, 1)
	go func() { // ends with the first line, or when the process dies
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	if s.addr = await(t, line, "the server's address"); s.addr == "" {
		s.kill()
		t.Fatalf("the server at %s printed no address; its stderr:\n%s", spec.Addr, s.stderr)
	}
	return s
}

// kill kills the server with SIGKILL and waits until it is gone, with
// its socket.
func (s *server) kill() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
}

// serveChild is the server process: it serves spec until its stdin
// closes or it is killed, and returns the exit code.
func serveChild(js string) int {
	var spec serverSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := quic.Options{Logger: log, StatelessResetKey: spec.Key}
	if spec.Cert != nil {
		priv, err := x509.ParsePKCS8PrivateKey(spec.PrivateKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{spec.Cert}, PrivateKey: priv}}}
	}
	tr := quic.New(opts)
	if spec.Env {
		env, err := core.NewEnv(core.Config{Name: "server", Listen: "quic://" + spec.Addr, Transports: []core.Transport{tr}, Logger: log})
		if err == nil {
			_, err = env.Register("echo", echoEndpoint())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(strings.TrimPrefix(env.Address(), "quic://"))
	} else {
		l, err := tr.Listen(spec.Addr, core.ConnOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(l.Addr())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					for {
						f, err := c.ReadFrame()
						if err == nil {
							err = c.WriteFrames([][]byte{f})
						}
						if err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// A connection to a server that was killed and started again on the same
// port with the same key ends with a stateless reset at the connection's
// next packet: its ReadFrame fails with *quicgo.StatelessResetError, long
// before the idle timeout (30 s here) would end it.
func TestAConnToARestartedServerEndsWithAStatelessReset(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	spec := serverSpec{Addr: "127.0.0.1:0", Key: key}
	old := startServer(t, spec)
	tr := quic.New(quic.Options{Logger: discardLog, IdleTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := tr.Dial(ctx, old.addr, core.ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A round trip: the handshake is confirmed, and the client holds the
	// server's reset tokens for its connection IDs.
	if err := c.WriteFrames([][]byte{[]byte("before")}); err != nil {
		t.Fatal(err)
	}
	if f, err := c.ReadFrame(); err != nil || string(f) != "before" {
		t.Fatalf("ReadFrame = %q, %v; want the echo", f, err)
	}

	old.kill()
	spec.Addr = old.addr
	startServer(t, spec)
	// The next packet reaches the new process, which does not know the
	// connection. (It must be over 42 bytes to be answered.)
	if err := c.WriteFrames([][]byte{make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() { // ends with ReadFrame: the reset, or c.Close when the test fails
		_, err := c.ReadFrame()
		readErr <- err
	}()
	err = await(t, readErr, "ReadFrame to fail")
	var sr *quicgo.StatelessResetError
	if !errors.As(err, &sr) {
		t.Fatalf("ReadFrame after the server restarted: %v; want a *quicgo.StatelessResetError", err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, core.ErrProtocol) {
		t.Fatalf("ReadFrame: %v; want a connection loss, not a clean end or a protocol error", err)
	}
}

// recorder is a transport that reports the error that ended each
// connection it dialed.
type recorder struct {
	core.Transport
	ended chan error
}

func (r *recorder) Dial(ctx context.Context, addr string, opts core.ConnOptions) (core.Conn, error) {
	c, err := r.Transport.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	return &recordedConn{Conn: c, ended: r.ended}, nil
}

type recordedConn struct {
	core.Conn
	ended chan error
	once  sync.Once
}

func (c *recordedConn) ReadFrame() ([]byte, error) {
	f, err := c.Conn.ReadFrame()
	if err != nil {
		c.once.Do(func() {
			select {
			case c.ended <- err:
			default:
			}
		})
	}
	return f, err
}

// An env whose server was killed and restarted on the same port, with
// the same certificate (so the same derived reset key), learns of it at
// its next message there, through the stateless reset, and not through
// the 30 s of PeerTimeout and IdleTimeout. The first ask after the
// restart goes out on the old connection; it is either lost with it and
// fails at once with ErrDisconnected naming the reset, or, when a packet
// of the env's own (a retransmission) drew the reset first, sent on a new
// connection. Either way the next ask reaches the new server.
func TestAnEnvLearnsOfARestartedServerThroughAStatelessReset(t *testing.T) {
	rec, echo := restartedServer(t, quic.Options{}, core.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), testWait) // a safety net, not a measure
	defer cancel()
	v, err := echo.Ask(ctx, "after")
	if err != nil {
		if !errors.Is(err, core.ErrDisconnected) || !strings.Contains(err.Error(), "stateless reset") {
			t.Fatalf("the first ask after the restart: %v; want ErrDisconnected naming the stateless reset", err)
		}
		t.Logf("the first ask after the restart drew the reset: %v", err)
		v, err = echo.Ask(ctx, "after")
	}
	if err != nil || v != "after" {
		t.Fatalf("ask after the restart = %v, %v", v, err)
	}
	err = await(t, rec.ended, "the end of the connection to the killed server")
	var sr *quicgo.StatelessResetError
	if !errors.As(err, &sr) {
		t.Fatalf("the connection to the killed server ended with %v; want a *quicgo.StatelessResetError", err)
	}
}

// An idle connection learns of a restarted server at its next heartbeat:
// core pads heartbeats so that their packet is large enough to draw a
// stateless reset (a reset answers only packets over 42 bytes). Without
// the padding, only the 30 s PeerTimeout would end it.
func TestAnIdleEnvLearnsOfARestartedServerAtItsNextHeartbeat(t *testing.T) {
	rec, _ := restartedServer(t, quic.Options{KeepAlive: -1}, core.Config{HeartbeatInterval: 50 * time.Millisecond})
	// Nothing is asked now: only heartbeats cross.
	err := await(t, rec.ended, "the idle connection to the killed server to end")
	var sr *quicgo.StatelessResetError
	if !errors.As(err, &sr) {
		t.Fatalf("the idle connection to the killed server ended with %v; want a *quicgo.StatelessResetError", err)
	}
}

// restartedServer starts a server process with a certificate (so a
// derived reset key), connects a client env to its echo endpoint over a
// transport that records how each connection ended, then kills the
// server and starts it again on the same port with the same
// certificate. opts and cfg are the client's, with IdleTimeout and
// PeerTimeout long (30 s), so that only a stateless reset ends the old
// connection soon.
func restartedServer(t *testing.T, opts quic.Options, cfg core.Config) (*recorder, *core.Ref) {
	t.Helper()
	tlsCfg, err := quic.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	cert := tlsCfg.Certificates[0]
	priv, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	spec := serverSpec{Env: true, Addr: "127.0.0.1:0", Cert: cert.Certificate[0], PrivateKey: priv}
	old := startServer(t, spec)

	const long = 30 * time.Second
	opts.Logger, opts.IdleTimeout = discardLog, long
	rec := &recorder{Transport: quic.New(opts), ended: make(chan error, 4)}
	cfg.Name, cfg.PeerTimeout = "client", long
	client := startEnv(t, rec, cfg)
	echo := mustLookup(t, client, "quic://"+old.addr+"/echo")
	if v, err := askWithin(t, echo, "before"); err != nil || v != "before" {
		t.Fatalf("ask before the restart = %v, %v", v, err)
	}
	old.kill()
	spec.Addr = old.addr
	startServer(t, spec)
	return rec, echo
}
