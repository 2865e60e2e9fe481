// Package faultproxy is a user-space proxy that injects network faults
// between a test's client and its target, for machines where netem,
// iptables and nft are not available. [TCP] forwards a stream per
// accepted connection; [UDP] forwards datagrams per client address (what
// QUIC needs).
//
// What it simulates, changeable at any time while traffic flows:
//
//   - Delay with jitter ([Faults]): each chunk a TCP pump reads, or each
//     datagram, is held Delay ± Jitter (uniform) before it is forwarded.
//     TCP keeps the order of bytes: a chunk is never written before the
//     one read before it. UDP does not: jittered datagrams may overtake
//     each other, as they may on a network.
//   - Loss (UDP only): each datagram is dropped with probability Loss,
//     independently in each direction.
//   - Stall (TCP): a direction stops being forwarded and read, with the
//     sockets left open, like a peer that stops reading: the kernel
//     buffers fill and the sender eventually blocks. Nothing is lost;
//     forwarding resumes at Heal.
//   - Partition: nothing is forwarded either way. Over TCP the bytes wait,
//     as in a stall, and a connection accepted during the partition is
//     held, without dialing the target, until Heal (or Cut, or Close).
//     Over UDP every datagram is dropped, including those already delayed.
//   - Cut (TCP): every connection is closed at once, both sockets, like a
//     peer killed mid-write.
//
// What it does not simulate: TCP loss, reordering or corruption (the
// proxy sees a byte stream after the kernel has retransmitted and
// reordered it; a lossy TCP link shows up only as delay, which Delay
// models); a partition's effect on the TCP handshake (the kernel accepts
// the client's connection before the proxy can refuse it, so a held
// connection looks established to the client); bandwidth limits; and
// anything below the socket API (MTU, ICMP, checksums).
//
// Randomness comes from math/rand/v2 seeded by [Faults.Seed], so a run
// is reproducible given the same traffic. Memory is bounded: a TCP
// direction holds at most 1 MiB of delayed bytes before it stops
// reading, and a UDP proxy holds at most 1 MiB or 4096 delayed
// datagrams, dropping (and counting) beyond that. The proxies listen
// only where the caller says; an empty listen address means
// "127.0.0.1:0".
package faultproxy
