package harness

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// A System is one way for a client to reach a server: rpcenv over a
// transport, another RPC library, or a floor with no library at all. Each
// setup it makes is fresh: one client, one server and one connection
// between them, torn down by Close.
type System interface {
	// Name is the system's name in reports ("rpcenv-tcp", "net/rpc").
	Name() string
	// Group says what the system is, for grouping and colours.
	Group() Group
	// NewAsker sets up a server that echoes each request and a client
	// ready for callers concurrent callers. It returns an error wrapping
	// errors.ErrUnsupported if the system cannot ask.
	NewAsker(callers int) (Asker, error)
	// NewSender sets up a server that counts the messages it receives
	// and a client that sends them one way. It returns an error wrapping
	// errors.ErrUnsupported if the system has no one-way messages.
	NewSender() (Sender, error)
	// NewBulkAsker sets up a server with an echo handler and a bulk
	// receiver that calls onBulk for each message it receives, then
	// drops it, and a client that reaches both over one connection. It
	// returns an error wrapping errors.ErrUnsupported if the system
	// cannot carry both on one connection.
	NewBulkAsker(onBulk func()) (BulkAsker, error)
	// NewSlowSender sets up a server whose receiver calls receive for
	// each message, one at a time and in order (receive takes its time:
	// it plays a slow consumer), and a client that sends one way. It
	// returns an error wrapping errors.ErrUnsupported if the system has
	// no one-way messages.
	NewSlowSender(receive func()) (SlowSender, error)
	// NewStreamer sets up a server that reads each stream opened to it
	// to its end and answers with the number of bytes it read, and a
	// client that opens streams to it. It returns an error wrapping
	// errors.ErrUnsupported if the system has no streams.
	NewStreamer() (Streamer, error)
}

// Group is what kind of system a System is.
type Group int

const (
	// GroupRPCEnv is rpcenv itself, over one of its transports.
	GroupRPCEnv Group = iota
	// GroupLibrary is another RPC library (gRPC-go, net/rpc).
	GroupLibrary
	// GroupFloor is a floor: the least work that moves the same bytes
	// (raw TCP frames, a raw QUIC stream, Go channels), with no library
	// on top.
	GroupFloor
)

// String names the group in legends.
func (g Group) String() string {
	switch g {
	case GroupRPCEnv:
		return "rpcenv"
	case GroupLibrary:
		return "gRPC-go, net/rpc"
	default:
		return "floors (raw TCP, channels)"
	}
}

// AskFunc makes one request and returns the server's reply. The reply is
// valid until the next call of the same AskFunc, and must not be modified.
// The request is only read, so one request slice may serve every caller.
type AskFunc func(req []byte) (reply []byte, err error)

// An Asker is the client side of an ask setup.
type Asker interface {
	// Callers returns one AskFunc per concurrent caller the Asker was
	// set up for. Each may be used by one goroutine at a time; different
	// ones at the same time.
	Callers() []AskFunc
	// Close tears down the client, the server and the connection, and
	// waits for their goroutines to exit. Calls in progress fail. It is
	// safe to call more than once, and from any goroutine.
	io.Closer
}

// A Sender is the client side of a one-way setup.
type Sender interface {
	// SendN sends n one-way messages carrying msg, from the calling
	// goroutine, and returns when the server has counted all n.
	SendN(msg []byte, n int) error
	// Close tears down the client, the server and the connection, and
	// waits for their goroutines to exit. A SendN in progress fails. It
	// is safe to call more than once, and from any goroutine.
	io.Closer
}

// A BulkAsker is the client side of a bulk-ask setup: asks and bulk
// messages over one connection.
type BulkAsker interface {
	// Ask asks the echo handler, as an AskFunc does. One goroutine at a
	// time may ask, at the same time as another sends bulk.
	Ask(req []byte) (reply []byte, err error)
	// SendBulk sends msg to the bulk receiver, one way (net/rpc, which
	// has no one-way messages, returns when the call does). One
	// goroutine at a time may send bulk. It may block while the system
	// pushes back, and fails once Close has been called.
	SendBulk(msg []byte) error
	// Close tears down the client, the server and the connection, and
	// waits for their goroutines to exit. Asks and sends in progress
	// fail. It is safe to call more than once, and from any goroutine.
	io.Closer
}

// A SlowSender is the client side of a slow-heap setup.
type SlowSender interface {
	// Send sends msg one way. It may block while the system pushes back,
	// and fails once Close has been called. One goroutine at a time.
	Send(msg []byte) error
	// Close tears down the client, the server and the connection, and
	// waits for their goroutines to exit. It drops what is queued rather
	// than deliver it, except where the system cannot (rpcenv's Shutdown
	// runs the messages already in an endpoint's inbox): there receive
	// is called for each, so callers make it quick before they Close. A
	// Send in progress fails. It is safe to call more than once, and from
	// any goroutine.
	io.Closer
}

// A Streamer is the client side of a stream setup.
type Streamer interface {
	// Stream opens a stream to the server, writes n bytes through it in
	// writes of chunk (the last one cut short), half-closes it, and
	// returns the byte count the server answered with once it had read
	// to the end. One goroutine at a time; each call is a new stream.
	Stream(chunk []byte, n int64) (count int64, err error)
	// Close tears down the client, the server and the connection, and
	// waits for their goroutines to exit. A Stream in progress fails. It
	// is safe to call more than once, and from any goroutine.
	io.Closer
}

// Timeout bounds every wait of a system and of the engine: a reply, a
// count or a whole run that takes longer is an error, so that no run can
// hang.
const Timeout = 60 * time.Second

// Systems returns every system, in report order: rpcenv's transports,
// then the other libraries, then the floors.
func Systems() []System {
	return []System{
		rpcenvSystem{name: "rpcenv-inproc", transport: inprocTransport},
		rpcenvSystem{name: "rpcenv-tcp", transport: tcpTransport},
		rpcenvSystem{name: "rpcenv-quic", transport: quicTransport},
		grpcSystem{stream: false},
		grpcSystem{stream: true},
		netrpcSystem{},
		rawTCPSystem{},
		rawQUICSystem{},
		chanSystem{},
		rpcenvSystem{name: "rpcenv-tcp-sealed", transport: tcpTransport, secret: benchSecret},
		rpcenvSystem{name: "rpcenv-tcp-tls", transport: tlsTransport},
		rpcenvSystem{name: "rpcenv-tcp-otel", transport: tcpTransport, otel: true},
	}
}

// BenchName is the system's name in testing.B benchmark names and in
// -systems filters: its Name with "/" replaced by "-" ("net-rpc"), so that
// it never splits a -bench pattern.
func BenchName(s System) string { return strings.ReplaceAll(s.Name(), "/", "-") }

// SelectSystems returns the systems named in list, a comma-separated list
// of names (Name or BenchName), in report order. An empty list selects
// every system; an unknown name is an error that lists the known ones.
func SelectSystems(list string) ([]System, error) {
	return selectNamed("system", list, Systems(), func(s System) []string { return []string{s.Name(), BenchName(s)} })
}

// selectNamed returns the items of all that list names, in the order of
// all: every item if list is empty. names gives the names an item answers
// to, the first of which is its name in errors.
func selectNamed[T any](what, list string, all []T, names func(T) []string) ([]T, error) {
	if strings.TrimSpace(list) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var picked []T
	var known []string
	for _, x := range all {
		ns := names(x)
		known = append(known, ns[0])
		if slices.ContainsFunc(ns, func(n string) bool { return want[n] }) {
			picked = append(picked, x)
		}
		for _, n := range ns {
			delete(want, n)
		}
	}
	if len(want) > 0 {
		unknown := slices.Sorted(maps.Keys(want))
		return nil, fmt.Errorf("unknown %s %s (known: %s)", what, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("no %s selected", what)
	}
	return picked, nil
}
