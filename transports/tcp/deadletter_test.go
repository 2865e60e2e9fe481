package tcp_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// An ask (or a Lookup) queued while its connection is being set up fails
// with the cause when the connection cannot be set up; it is not also a
// dead letter, which is for sends only (issue 3: "every queued ask fails
// ... and queued sends are counted as dead letters").
func TestAQueuedAskWhoseConnectionFailsIsNotADeadLetter(t *testing.T) {
	// A port nobody listens on: bind one, note it, free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://" + l.Addr().String()
	l.Close()

	var mu sync.Mutex
	var letters []core.DeadLetter
	client := startEnv(t, nil, core.Config{Name: "client", OnDeadLetter: func(d core.DeadLetter) {
		mu.Lock()
		letters = append(letters, d)
		mu.Unlock()
	}})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := client.Lookup(ctx, addr+"/echo"); !errors.Is(err, core.ErrDisconnected) {
		t.Fatalf("Lookup of a closed port: %v; want ErrDisconnected", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := client.DeadLetters(); n != 0 {
		t.Errorf("a failed Lookup counted %d dead letters (%+v); want 0: the asker got the error", n, letters)
	}
}
