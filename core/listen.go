package core

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// This file owns Config.PortRetries: binding the next free port when the
// one asked for is taken, and what Config.Advertise then says.

// listen starts t's listener at addr (Config.Listen's address). When addr
// names a nonzero port that is in use, it tries the next ports, up to
// retries of them and never past 65535, and keeps the first it binds.
func (e *Env) listen(t Transport, addr string, retries int) (Listener, error) {
	l, err := t.Listen(addr, e.connOptions())
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return l, err
	}
	host, port, ok := splitPort(addr)
	if !ok || port == 0 {
		return nil, err // the transport chose the port: nothing to move
	}
	if retries == 0 {
		return nil, fmt.Errorf("%w (Config.PortRetries is 0: no other port was tried)", err)
	}
	tried := []string{strconv.Itoa(port)}
	for p := port + 1; p <= min(port+retries, 65535); p++ {
		l, err = t.Listen(net.JoinHostPort(host, strconv.Itoa(p)), e.connOptions())
		if err == nil {
			e.log.Warn("rpcenv: listen port in use; took the next free one (Config.PortRetries)",
				"listen", addr, "in_use", strings.Join(tried, ","), "port", p)
			return l, nil
		}
		tried = append(tried, strconv.Itoa(p))
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("ports %s in use, then port %d failed: %w", strings.Join(tried[:len(tried)-1], ", "), p, err)
		}
	}
	return nil, fmt.Errorf("ports %s are all in use (Config.PortRetries is %d): %w", strings.Join(tried, ", "), retries, err)
}

// advertised returns the host:port refs carry, given adv (the address of
// Config.Advertise), listen (Config.Listen's) and bound (the listener's).
// When the listener had to move off listen's port (Config.PortRetries),
// an adv naming that same port moves with it, and an adv naming another
// port is an error: it stands for a mapping to listen's port that the
// env cannot move.
func advertised(adv, listen, bound string) (string, error) {
	_, want, ok := splitPort(listen)
	_, got, okBound := splitPort(bound)
	if !ok || !okBound || want == 0 || got == want {
		return adv, nil
	}
	host, port, ok := splitPort(adv)
	switch {
	case !ok:
		return adv, nil // no port of its own to follow
	case port != want:
		return "", fmt.Errorf("it names port %d, which stands for Config.Listen's port %d, but that port was in use and the env listens on %d (Config.PortRetries): peers would reach another program", port, want, got)
	}
	return net.JoinHostPort(host, strconv.Itoa(got)), nil
}

// splitPort splits "host:port" with a numeric port.
func splitPort(addr string) (host string, port int, ok bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, false
	}
	return host, port, true
}
