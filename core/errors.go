package core

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Sentinel errors. Every error rpcenv returns wraps one of these where one
// applies, on the asker's side too when the failure happened in a remote
// env: test them with errors.Is.
var (
	// ErrEndpointNotFound: no endpoint of that name is registered (or it
	// was stopped) in the target env.
	ErrEndpointNotFound = errors.New("endpoint not found")
	// ErrNameTaken: Register was given a name already in use in the env.
	ErrNameTaken = errors.New("endpoint name taken")
	// ErrEnvStopped: the env was shut down.
	ErrEnvStopped = errors.New("env stopped")
	// ErrMessageTooLarge: an encoded message exceeds Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrUnregisteredType: a message's type is neither built in nor
	// registered with RegisterMessage.
	ErrUnregisteredType = errors.New("unregistered message type")
	// ErrUnknownScheme: a URI names a scheme no configured transport serves.
	ErrUnknownScheme = errors.New("unknown URI scheme")
	// ErrUnauthenticated: the peer did not prove the shared secret
	// (or one side has a secret and the other has none).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrDisconnected: the connection the message needed is gone, or
	// broke while an ask was in flight.
	ErrDisconnected = errors.New("disconnected")
	// ErrAlreadyAnswered: Reply or Fail was called on an ask that was
	// already answered.
	ErrAlreadyAnswered = errors.New("ask already answered")
	// ErrNotAsk: Reply or Fail was called while handling a send.
	ErrNotAsk = errors.New("message is not an ask")
	// ErrProtocol: a peer sent bytes that do not follow the rpcenv protocol.
	ErrProtocol = errors.New("protocol violation")
	// ErrInboxFull: a local send or ask found the endpoint's inbox at its
	// limit ([WithInboxLimit]). Local senders never wait for room, so that
	// an endpoint that sends to itself cannot deadlock; the message is
	// counted as a dead letter.
	ErrInboxFull = errors.New("inbox full")
	// ErrStreamClosed: a Stream was used after it was closed, on either
	// side: a Write after CloseWrite, a Read or Write after Close, or the
	// peer's Write after this side's Close.
	ErrStreamClosed = errors.New("stream closed")
	// ErrNotStreamHandler: OpenStream named an endpoint that does not
	// implement StreamHandler.
	ErrNotStreamHandler = errors.New("endpoint does not accept streams")
	// ErrNotFound: Env.Open named a file that the env does not serve.
	ErrNotFound = errors.New("file not found")
	// ErrDeadlock: an Ask made while handling a message could never be
	// answered, because the endpoint it asks is waiting for this very
	// ask: itself, or an endpoint of the same env that (through others)
	// asked the caller, each handling one message at a time. The error
	// names the chain. See Ref.Ask.
	ErrDeadlock = errors.New("deadlock")
	// ErrInvalidHeader: an interceptor set headers that break the limits
	// (Call.Headers); the call fails without sending anything.
	ErrInvalidHeader = errors.New("invalid header")
)

// Wire codes for the sentinels, so that errors.Is holds across envs.
var sentinelCodes = []struct {
	code string
	err  error
}{
	{"endpoint_not_found", ErrEndpointNotFound},
	{"name_taken", ErrNameTaken},
	{"env_stopped", ErrEnvStopped},
	{"message_too_large", ErrMessageTooLarge},
	{"unregistered_type", ErrUnregisteredType},
	{"unknown_scheme", ErrUnknownScheme},
	{"unauthenticated", ErrUnauthenticated},
	{"disconnected", ErrDisconnected},
	{"already_answered", ErrAlreadyAnswered},
	{"not_ask", ErrNotAsk},
	{"protocol", ErrProtocol},
	{"inbox_full", ErrInboxFull},
	{"stream_closed", ErrStreamClosed},
	{"not_stream_handler", ErrNotStreamHandler},
	{"not_found", ErrNotFound},
	{"deadlock", ErrDeadlock},
	{"invalid_header", ErrInvalidHeader},
}

// appCodes holds the errors registered with RegisterError, copied on
// write: readers load it without a lock.
var (
	appCodes   atomic.Pointer[[]codedError]
	appCodesMu sync.Mutex // serializes RegisterError
)

type codedError struct {
	code string
	err  error
}

// RegisterError gives an application's error a wire code, so that an
// endpoint's error that wraps err keeps its identity across envs: the
// asker's error, a *RemoteError, then satisfies errors.Is(e, err), as it
// does for this package's sentinels. Register the same code for the same
// error in every program that answers with it or tests for it, at init
// (codes, not Go values, cross the wire). An error that wraps no
// registered error crosses as its text alone, as before.
//
// Codes are 3 to 64 bytes of lower-case letters, digits, '_', '-' and
// '.', and must contain a '.': codes without one belong to rpcenv (its
// sentinels' codes, docs/PROTOCOL.md, "Error codes"), and so do those
// that start with "rpcenv.". Name yours after your program or package,
// "billing.quota_exceeded". When an error wraps several registered
// errors, the first registered wins, and registered errors go before
// this package's sentinels.
//
// RegisterError panics if the code is malformed or taken, if err is nil
// or one of this package's sentinels, or if err already has a code.
func RegisterError(code string, err error) {
	if msg := badCode(code); msg != "" {
		panic(fmt.Sprintf("rpcenv: RegisterError(%q): %s", code, msg))
	}
	if err == nil {
		panic(fmt.Sprintf("rpcenv: RegisterError(%q): nil error", code))
	}
	if c := sentinelCode(err); c != "" {
		panic(fmt.Sprintf("rpcenv: RegisterError(%q, %v): the error is rpcenv's own, with code %q", code, err, c))
	}
	appCodesMu.Lock()
	defer appCodesMu.Unlock()
	var old []codedError
	if p := appCodes.Load(); p != nil {
		old = *p
	}
	for _, c := range old {
		switch {
		case c.code == code:
			panic(fmt.Sprintf("rpcenv: RegisterError(%q, %v): the code is taken by %v", code, err, c.err))
		case c.err == err:
			panic(fmt.Sprintf("rpcenv: RegisterError(%q, %v): the error already has code %q", code, err, c.code))
		}
	}
	next := append(old[:len(old):len(old)], codedError{code, err})
	appCodes.Store(&next)
}

// badCode says what is wrong with an application's error code, or "".
func badCode(code string) string {
	switch {
	case len(code) < 3 || len(code) > 64:
		return "a code is 3 to 64 bytes long"
	case strings.Trim(code, "abcdefghijklmnopqrstuvwxyz0123456789_-.") != "":
		return "a code has only lower-case letters, digits, '_', '-' and '.'"
	case !strings.Contains(code, "."):
		return "an application's code contains a '.' (codes without one are rpcenv's)"
	case strings.HasPrefix(code, "rpcenv."):
		return `codes starting with "rpcenv." are rpcenv's`
	}
	return ""
}

// codeOf returns the wire code of the first registered error err wraps,
// else of the first sentinel it wraps, or "".
func codeOf(err error) string {
	if p := appCodes.Load(); p != nil {
		for _, c := range *p {
			if errors.Is(err, c.err) {
				return c.code
			}
		}
	}
	return sentinelCode(err)
}

// sentinelCode returns the wire code of the first sentinel err wraps, or
// "".
func sentinelCode(err error) string {
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return ""
}

// sentinelOf returns the error for a wire code, a sentinel or a
// registered one, or nil.
func sentinelOf(code string) error {
	if code == "" {
		return nil
	}
	for _, s := range sentinelCodes {
		if s.code == code {
			return s.err
		}
	}
	if p := appCodes.Load(); p != nil {
		for _, c := range *p {
			if c.code == code {
				return c.err
			}
		}
	}
	return nil
}

// RemoteError is the error an endpoint answered an ask with: an error it
// returned from Receive, passed to Context.Fail, or a panic it raised.
// Asks to endpoints of the same env get a RemoteError too, so code behaves
// the same whatever the transport.
//
// errors.Is(err, ErrX) holds when the endpoint's error wrapped one of this
// package's sentinels, or an error registered with [RegisterError] in
// both programs; other error identities do not cross envs, only their
// message does.
type RemoteError struct {
	Endpoint string // URI of the endpoint that answered
	Message  string // the error's text
	Code     string // wire code of the sentinel or registered error it wrapped, "" if none
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("rpcenv: remote %s: %s", e.Endpoint, e.Message)
}

// Unwrap returns the sentinel or registered error the remote error
// wrapped, or nil (also for a code this program has not registered).
func (e *RemoteError) Unwrap() error { return sentinelOf(e.Code) }

// PanicError is a panic recovered from an endpoint's Receive, OnStart or
// OnStop, as given to OnError.
type PanicError struct {
	Endpoint string // URI of the endpoint that panicked
	Value    any    // the value passed to panic
	Stack    []byte // the panicking goroutine's stack
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("rpcenv: endpoint %s panicked: %v", e.Endpoint, e.Value)
}

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// maxErrorText is the most of an error's text that crosses the wire, in
// a Fail or a Stream reset (docs/PROTOCOL.md, "Limits").
const maxErrorText = 4096

// errorText is err's text as it crosses the wire: cut to maxErrorText
// bytes.
func errorText(err error) string {
	msg := err.Error()
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "..."
	}
	return msg
}
