package core_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// ports is a transport that listens on any "host:port" but those in busy,
// which fail as an OS does (an error wrapping EADDRINUSE), or with
// failWith when set. It records every address Listen was given.
type ports struct {
	busy     map[string]bool
	failWith error
	mu       sync.Mutex
	tried    []string
}

func (*ports) Scheme() string { return "ports" }

func (t *ports) Listen(addr string, _ core.ConnOptions) (core.Listener, error) {
	t.mu.Lock()
	t.tried = append(t.tried, addr)
	t.mu.Unlock()
	if t.failWith != nil {
		return nil, fmt.Errorf("ports: listen ports://%s: %w", addr, t.failWith)
	}
	if t.busy[addr] {
		return nil, fmt.Errorf("ports: listen ports://%s: %w", addr, &net.OpError{Op: "listen", Net: "tcp", Err: &osSyscallError{syscall.EADDRINUSE}})
	}
	return &portsListener{addr: addr, closed: make(chan struct{})}, nil
}

func (*ports) Dial(context.Context, string, core.ConnOptions) (core.Conn, error) {
	return nil, errors.New("ports: no dialing")
}

func (t *ports) triedAddrs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.tried...)
}

// osSyscallError wraps an errno as os.SyscallError does.
type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "bind: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

type portsListener struct {
	addr   string
	once   sync.Once
	closed chan struct{} // closed by Close, once
}

func (l *portsListener) Accept() (core.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}
func (l *portsListener) Addr() string { return l.addr }
func (l *portsListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func newPortsEnv(t *testing.T, tr *ports, cfg core.Config) (*core.Env, error) {
	t.Helper()
	cfg.Transports = []core.Transport{tr}
	cfg.Logger = slog.New(slog.DiscardHandler) // the line saying the port moved
	e, err := core.NewEnv(cfg)
	if err == nil {
		t.Cleanup(func() { e.Shutdown(context.Background()) })
	}
	return e, err
}

func busy(addrs ...string) map[string]bool {
	m := map[string]bool{}
	for _, a := range addrs {
		m[a] = true
	}
	return m
}

func TestPortRetriesTakeTheFirstFreePortAfterTheOneInUse(t *testing.T) {
	tr := &ports{busy: busy("h:7077", "h:7078")}
	e, err := newPortsEnv(t, tr, core.Config{Listen: "ports://h:7077", PortRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Address(); got != "ports://h:7079" {
		t.Errorf("Address() = %q, want ports://h:7079", got)
	}
	ref, err := e.Register("x", endpointFunc(func(*core.Context, any) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if ref.String() != "ports://h:7079/x" {
		t.Errorf("ref %s, want ports://h:7079/x", ref)
	}
	if got := strings.Join(tr.triedAddrs(), " "); got != "h:7077 h:7078 h:7079" {
		t.Errorf("Listen was given %s, want h:7077 h:7078 h:7079", got)
	}
}

func TestPortRetriesFailNamingEveryPortTried(t *testing.T) {
	tr := &ports{busy: busy("h:7077", "h:7078", "h:7079")}
	_, err := newPortsEnv(t, tr, core.Config{Listen: "ports://h:7077", PortRetries: 2})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("NewEnv with every port taken: %v; want an error wrapping EADDRINUSE", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "7077, 7078, 7079") || !strings.Contains(msg, "Config.PortRetries") {
		t.Errorf("the error %q should list the ports tried and name Config.PortRetries", msg)
	}
}

func TestPortRetriesStopAtTheLastPort(t *testing.T) {
	tr := &ports{busy: busy("h:65534", "h:65535")}
	_, err := newPortsEnv(t, tr, core.Config{Listen: "ports://h:65534", PortRetries: 10})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("NewEnv: %v; want EADDRINUSE", err)
	}
	if got := strings.Join(tr.triedAddrs(), " "); got != "h:65534 h:65535" {
		t.Errorf("Listen was given %s, want h:65534 h:65535 and no port past 65535", got)
	}
}

// TestPortRetriesApplyOnlyToAPortInUse: no retries without a nonzero
// numeric port, nor for another error, nor with PortRetries 0.
func TestPortRetriesApplyOnlyToAPortInUse(t *testing.T) {
	for _, c := range []struct {
		name, listen string
		tr           *ports
	}{
		{"PortRetries 0", "ports://h:7077", &ports{busy: busy("h:7077")}},
		{"port 0", "ports://h:0", &ports{busy: busy("h:0")}},
		{"no port", "ports://driver", &ports{busy: busy("driver")}},
		{"another error", "ports://h:7077", &ports{failWith: syscall.EACCES}},
	} {
		t.Run(c.name, func(t *testing.T) {
			retries := 3
			if c.name == "PortRetries 0" {
				retries = 0
			}
			_, err := newPortsEnv(t, c.tr, core.Config{Listen: c.listen, PortRetries: retries})
			if err == nil {
				t.Fatal("NewEnv succeeded")
			}
			if tried := c.tr.triedAddrs(); len(tried) != 1 {
				t.Errorf("Listen was given %v, want one address", tried)
			}
			if !strings.Contains(err.Error(), c.listen) {
				t.Errorf("the error %q does not name %s", err, c.listen)
			}
		})
	}
}

func TestPortRetriesMoveAnAdvertisedAddressOnTheSamePort(t *testing.T) {
	tr := &ports{busy: busy("0.0.0.0:7077")}
	e, err := newPortsEnv(t, tr, core.Config{Listen: "ports://0.0.0.0:7077", Advertise: "ports://driver.local:7077", PortRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Address(); got != "ports://driver.local:7078" {
		t.Errorf("Address() = %q, want ports://driver.local:7078", got)
	}
}

func TestPortRetriesRefuseToMoveAnAdvertisedMapping(t *testing.T) {
	tr := &ports{busy: busy("0.0.0.0:7077")}
	_, err := newPortsEnv(t, tr, core.Config{Listen: "ports://0.0.0.0:7077", Advertise: "ports://gateway:30077", PortRetries: 1})
	if err == nil || !strings.Contains(err.Error(), "Config.Advertise") || !strings.Contains(err.Error(), "7078") {
		t.Fatalf("NewEnv advertising another port after moving: %v; want an error naming Config.Advertise and the port it got", err)
	}
}

func TestPortRetriesLeaveAnAdvertisedMappingAloneWhenThePortIsFree(t *testing.T) {
	e, err := newPortsEnv(t, &ports{}, core.Config{Listen: "ports://0.0.0.0:7077", Advertise: "ports://gateway:30077", PortRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Address(); got != "ports://gateway:30077" {
		t.Errorf("Address() = %q, want ports://gateway:30077", got)
	}
}

func TestNewEnvRefusesNegativePortRetries(t *testing.T) {
	_, err := core.NewEnv(core.Config{PortRetries: -1})
	if err == nil || !strings.Contains(err.Error(), "Config.PortRetries") {
		t.Fatalf("NewEnv with PortRetries -1: %v; want an error naming Config.PortRetries", err)
	}
}
