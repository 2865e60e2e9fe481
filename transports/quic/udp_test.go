package quic

import (
	"bytes"
	"net"
	"testing"
)

// TestUDPConnWritesWithoutAllocating checks that udpConn's WriteMsgUDP
// delivers to an IPv4 address, from an IPv4 socket and from a dual-stack
// one, and allocates nothing.
func TestUDPConnWritesWithoutAllocating(t *testing.T) {
	for _, from := range []*net.UDPAddr{{IP: net.IPv4(127, 0, 0, 1)}, {IP: net.IPv4zero}} {
		rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		to := rc.LocalAddr().(*net.UDPAddr)
		uc, err := net.ListenUDP("udp", from)
		if err != nil {
			rc.Close()
			t.Fatal(err)
		}
		c := udpConn{uc}
		msg := []byte("packet from " + from.String())
		if _, _, err := c.WriteMsgUDP(msg, nil, to); err != nil {
			uc.Close()
			t.Fatalf("from %s: %v", from, err)
		}
		buf := make([]byte, 64)
		n, _, err := rc.ReadFromUDP(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Errorf("from %s: read %q, %v; want %q", from, buf[:n], err, msg)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := c.WriteMsgUDP(msg, nil, to); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("from %s: %v allocations per write, want 0", from, allocs)
		}
		uc.Close()
		rc.Close()
	}
}
