package quic

import (
	"net"
)

// udpConn is the UDP socket a quic-go Transport sends and receives on. It
// is a *net.UDPConn, so that quic-go keeps its optimizations (batched
// reads, GSO, ECN), whose WriteMsgUDP does not allocate: quic-go sends
// every packet with WriteMsgUDP to a *net.UDPAddr, which the net package
// turns into a socket address on the heap, one allocation per packet
// (two per ask). WriteMsgUDPAddrPort takes the same address by value.
type udpConn struct {
	*net.UDPConn
}

// WriteMsgUDP writes b and oob to addr as (*net.UDPConn).WriteMsgUDP
// does.
func (c udpConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if addr == nil {
		return c.UDPConn.WriteMsgUDP(b, oob, nil)
	}
	return c.UDPConn.WriteMsgUDPAddrPort(b, oob, addr.AddrPort())
}
