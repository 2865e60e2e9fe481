// Package conformance is the behaviour every rpcenv transport must show,
// as one function a transport's tests call.
//
// A transport author writes one test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Factory{
//			NewTransport: func(t testing.TB) core.Transport { return mytransport.New(mytransport.Options{}) },
//			ListenURI:    func(t testing.TB) string { return "my://127.0.0.1:0" },
//		})
//	}
//
// Run checks, as subtests whose names read as the specification, two
// layers. Group Conn checks the core.Transport, Listener and Conn contract
// itself, on the transport alone with no env: frames of every size up to
// the env's frame limit cross whole, byte-exact and in order, thousands of
// them, none lost or repeated; a peer's Close gives its frames, then
// io.EOF itself; after Close no frame is read, only errors wrapping
// net.ErrClosed; ConnOptions.MaxFrameSize applies from the first frame, on
// both ends; Listener.Close ends Accept and spares the connections it
// made; Addr is the bound, dialable address; two open connections have
// distinct RemoteAddr labels; Close releases a writer blocked on a peer
// that reads nothing, and returns, and so does the peer's Close; a Dial
// whose context is done fails; a closed listener's address is free again.
// The env relies on all of it but cannot see all of it: its frames never
// exceed its limit, and it closes a connection after any error.
//
// The other groups check what package core promises, through envs on the
// transport: ordered delivery (Delivery, Order), large messages arriving
// byte-exact near Config.MaxMessageSize, by Send and by Ask and Reply
// (Payload), thousands of messages over several endpoints arriving in
// order, exactly once, both ways (Volume), lifecycles, asks and their
// failures, refs inside messages (typed fields and untyped values: any,
// map[string]any, nested []any) and malformed ones, authentication, size
// limits, network events, client-mode peers told apart (ClientPeers),
// connections cut under blocked senders and one end's close seen at the
// other with heartbeats off (Cut), shutdown and its hard stage (Shutdown), flow
// control and interleaving (Pressure), byte streams: exact bytes up to
// 100 MiB, half-closes, aborts, a hundred at once, a cut mid-stream, a
// stream beside large messages in flight (Streams), and the file server:
// served files and directories, missing names, path escapes (Files). On
// a transport whose connections are core.StreamConns (QUIC), the Streams and Files groups run over its
// byte streams. Between the envs and the transport the suite puts a thin
// wrapper of its own, which can cut connections (both ends, as a failed
// network would, or one end, as a peer that closed it), freeze the
// accepting side (as a stopped process would) and see every frame,
// without the transport's help; it keeps a StreamConn one.
//
// # Leaks
//
// Run checks for leaked goroutines itself, with go.uber.org/goleak: after
// its last subtest it fails if a goroutine that was not running when Run
// began is still running (goleak retries for a moment, so goroutines on
// their way out are not counted). Every case shuts its envs down and
// closes its listeners and connections, so what is left was leaked by the
// transport, or by core. This assumes nothing else starts goroutines while
// Run runs: do not call t.Parallel in the test that calls Run. A TestMain
// with goleak.VerifyTestMain still serves the package's other tests.
//
// # Waits
//
// Cases assert orders of events, never durations. Every wait is bounded
// by 20 s, which only a hang reaches (it is no performance target), and
// waits on a signal. Where there is none, to know that a call is blocked
// inside the transport or the env (a WriteFrames on a peer that reads
// nothing, a Send without credit), the suite polls the goroutine stacks
// (runtime.Stack) for the named function that made the call, parked; a
// wrong guess can only make a case check less, never fail a correct
// transport.
//
// # Does the suite catch bugs?
//
// Method (mutation testing, by hand): in a scratch copy of the module,
// one realistic bug at a time is planted in a transport or in
// internal/framing, and only the shared suite is run on a transport that
// uses the changed code:
//
//	go test -race -count=1 -timeout 120s -run 'TestConformance$' ./transports/<t>/
//
// A bug counts as caught when the run fails: a failing case, a hang ended
// by the test timeout, or a leak found at the end of Run. The transports'
// own tests are not run, so the figure is the suite's alone.
//
// Result (the transports and core of the connection-layer rebuild): 52
// bugs planted, 52 caught. A first round, on an earlier snapshot, left
// three survivors: a tcp Dial that ignores its context, an inproc
// Listener.Close that keeps its name, and one that proved equivalent (it
// changed no behaviour; I16 replaced it). The suite then gained
// Conn/DialWithADoneContextFails,
// Conn/AClosedListenersAddressCanBeListenedOnAgain and, in
// Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead, the variants
// where the reading end closes (the writer's own end stays open). Group
// Conn catches almost every bug; at least 22 of the 52 also fail a case
// through envs (a hang can end the run before others), the rest being
// invisible to an env, whose frames stay under its limit and which closes
// a connection after any error. One line per bug: id, code changed, the
// bug, then the first case that failed and how many more did:
//
//	F1  framing Reader ignores the MaxFrameSize limit -> Conn/AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame
//	F2  framing off-by-one limit, a frame of exactly MaxFrameSize is refused -> Conn/FramesCrossWholeAndByteExactBothWays (+2 more)
//	F3  framing frames read through the large-frame path are truncated to 64 KiB -> Conn/FramesCrossWholeAndByteExactBothWays (+13 more)
//	F4  framing writev writes the length as 16 bits (frames of 64 KiB and more corrupt) -> Conn/FramesCrossWholeAndByteExactBothWays (+13 more)
//	F5  framing gather copies only what fits the 64 KiB buffer, dropping the rest of a frame that crosses it -> Conn/FramesCrossWholeAndByteExactBothWays (+12 more); hangs: test timeout
//	F6  framing a clean end of stream is a wrapped io.EOF -> Conn/APeersCloseGivesEveryFrameThenIOEOF
//	F7  framing growing the large-frame buffer loses the bytes already read (no copy) -> Conn/FramesCrossWholeAndByteExactBothWays (+13 more)
//	F8  framing writev forgets the copied small frames after the batch's last large one -> Conn/FramesCrossWholeAndByteExactBothWays (+11 more); hangs: test timeout
//	T1  tcp     Close half-closes (CloseWrite): blocked ReadFrame/WriteFrames are not released, the socket is never closed -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting (+1 more)
//	T2  tcp     ReadFrame returns frames already buffered after Close -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting
//	T3  tcp     RemoteAddr is the local address (all accepted connections share it) -> Conn/TwoConnectionsOpenAtOnceHaveDistinctRemoteAddrs (+2 more)
//	T4  tcp     Listener.Close does not close the socket: Accept never returns -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections (+4 more); hangs: test timeout
//	T5  tcp     Accept's error after Close does not wrap net.ErrClosed (%v) -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections
//	T6  tcp     MaxFrameSize not passed to the reader -> Conn/AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame
//	T7  tcp     WriteFrames drops 1 frame in 2,000 -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays (+8 more)
//	T8  tcp     WriteFrames swaps the first two frames of one batch in 300 -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays
//	T9  tcp     Close waits for the write in progress (a mutex): it hangs on a peer that does not read -> Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead
//	T10 tcp     the peer's clean close is reported as net.ErrClosed, not io.EOF -> Conn/APeersCloseGivesEveryFrameThenIOEOF
//	T11 tcp     WriteFrames after (or interrupted by) Close reports success -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting (+1 more)
//	T12 tcp     ReadFrame after Close swallows the error (nil frame, nil error) -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting
//	Q1  quic    Close does not wake a blocked WriteFrames (then waits for its lock) -> Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead
//	Q2  quic    Close waits without bound for the peer's FIN -> Conn/FramesCrossWholeAndByteExactBothWays (+3 more); hangs: test timeout
//	Q3  quic    Close never reaches the peer (no FIN, no CONNECTION_CLOSE) -> Conn/APeersCloseGivesEveryFrameThenIOEOF (+2 more); hangs: test timeout
//	Q4  quic    ReadFrame returns frames already buffered after Close -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting
//	Q5  quic    MaxFrameSize not passed to the reader -> Conn/AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame
//	Q6  quic    Accept does not return after Listener.Close -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections (+3 more); hangs: test timeout
//	Q7  quic    RemoteAddr is the local address (not unique) -> Conn/TwoConnectionsOpenAtOnceHaveDistinctRemoteAddrs (+2 more)
//	Q8  quic    WriteFrames drops 1 frame in 2,000 -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays (+7 more); hangs: test timeout
//	Q9  quic    the peer's clean close comes back wrapped ("quic: read from ...: EOF"), not io.EOF itself -> Conn/APeersCloseGivesEveryFrameThenIOEOF
//	Q10 quic    Accept's error after Close does not wrap net.ErrClosed -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections
//	Q11 quic    Close sends CONNECTION_CLOSE right after the FIN, without waiting: frames in flight are discarded -> Conn/APeersCloseGivesEveryFrameThenIOEOF (+2 more)
//	Q12 quic    WriteFrames swaps the first two frames of one batch in 300 -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays
//	I1  inproc  WriteFrames keeps the caller's frame instead of a copy -> Conn/FramesCrossWholeAndByteExactBothWays (+23 more)
//	I2  inproc  Close never reaches the peer (no end of stream) -> Conn/APeersCloseGivesEveryFrameThenIOEOF (+4 more); hangs: test timeout
//	I3  inproc  Close does not wake a WriteFrames blocked on a full queue -> Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead
//	I4  inproc  the reader's MaxFrameSize is not applied -> Conn/AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame
//	I5  inproc  the client counter is read, never advanced: every accepted connection is "~client-0" -> Conn/TwoConnectionsOpenAtOnceHaveDistinctRemoteAddrs (+1 more)
//	I6  inproc  Close lets ReadFrame drain the frames already queued -> Conn/AfterCloseReadFrameFailsWithErrClosedEvenWithFramesWaiting
//	I7  inproc  Close drops the frames written but not yet read by the peer (no clean end of stream) -> Conn/APeersCloseGivesEveryFrameThenIOEOF (+2 more)
//	I8  inproc  Listener.Close does not end a waiting Accept -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections (+3 more); hangs: test timeout
//	I9  inproc  1 frame in 2,000 is dropped -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays (+8 more)
//	I10 inproc  a frame is occasionally read before the one queued ahead of it -> Conn/ThousandsOfFramesArriveInOrderExactlyOnceBothWays (+5 more)
//	I11 inproc  the end of stream comes back wrapped, not io.EOF itself -> Conn/APeersCloseGivesEveryFrameThenIOEOF
//	I12 inproc  Listen on a name in use takes it over -> Conn/AddrIsTheBoundAddressAndDialable
//	I13 inproc  off-by-one MaxFrameSize check (a frame one byte over passes) -> Conn/AFrameOverMaxFrameSizeIsRefusedFromTheFirstFrame
//	Q13 quic    Listener.Close closes the UDP socket at once, killing the connections it accepted -> Conn/ListenerCloseEndsAcceptWithErrClosedAndSparesItsConnections (+2 more)
//	Q14 quic    a closed connection never releases its listener: the UDP socket and quic-go's goroutines outlive everything -> Conn/AClosedListenersAddressCanBeListenedOnAgain (+1 more); leak check
//	I14 inproc  no backpressure: a writer never waits, the queue grows without bound -> Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead
//	I15 inproc  ReadFrame recycles the buffer it returns (another write may overwrite it while the env decodes) -> Conn/FramesCrossWholeAndByteExactBothWays (+12 more)
//	I16 inproc  a writer blocked on a full queue is not woken when the reader's end closes or the link is severed -> Conn/CloseReleasesAWriterBlockedOnAPeerThatDoesNotRead
//	I17 inproc  Listener.Close keeps the name: it cannot be listened on again, dials are refused only by the closed channel -> Conn/AClosedListenersAddressCanBeListenedOnAgain
//	T13 tcp     Dial ignores its context -> Conn/DialWithADoneContextFails
package conformance
