package core

import (
	"errors"
	"fmt"
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
}

// codeOf returns the wire code of the first sentinel err wraps, or "".
func codeOf(err error) string {
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return ""
}

// sentinelOf returns the sentinel for a wire code, or nil.
func sentinelOf(code string) error {
	for _, s := range sentinelCodes {
		if s.code == code {
			return s.err
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
// package's sentinels; other error identities do not cross envs, only
// their message does.
type RemoteError struct {
	Endpoint string // URI of the endpoint that answered
	Message  string // the error's text
	Code     string // wire code of the sentinel it wrapped, "" if none
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("rpcenv: remote %s: %s", e.Endpoint, e.Message)
}

// Unwrap returns the sentinel the remote error wrapped, or nil.
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
