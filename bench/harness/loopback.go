package harness

import (
	"errors"
	"net"
	"time"
)

// loopback returns both ends of a new loopback TCP connection.
func loopback() (client, server net.Conn, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // ends with the Accept: the listener is closed on return
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.DialTimeout("tcp", l.Addr().String(), Timeout)
	if err != nil {
		l.Close()
		<-accepted
		return nil, nil, err
	}
	select {
	case server = <-accepted:
	case <-time.After(Timeout):
	}
	if server == nil {
		client.Close()
		return nil, nil, errors.New("loopback: accept failed")
	}
	return client, server, nil
}
