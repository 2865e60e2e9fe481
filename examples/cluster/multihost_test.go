package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rpcenv/rpcenv/internal/faultproxy"
)

// The multi-host test runs the job as it runs on a cluster: the driver
// and three executors are processes, each in a network namespace of its
// own, and every executor reaches the driver through a fault-injecting
// proxy (internal/faultproxy) running in a hub namespace between them:
//
//	exec-1 ns ──veth── ┐
//	exec-2 ns ──veth── ┤ hub ns: one proxy per executor ──veth── driver ns
//	exec-3 ns ──veth── ┘
//
// Every link gets 20 ms ± 5 ms of delay each way and, over QUIC (UDP),
// 1% loss; a TCP proxy cannot drop segments (the kernel retransmits them
// below it), so over TCP the faults are the delay and the partition.
// Mid-job, exec-2's proxy partitions it for longer than the driver's
// expiry (three heartbeats) and shorter than the envs' PeerTimeout; once
// the driver reports it lost, the partition heals, and exec-2 must
// register again. The job's result must be right; the test logs how long
// it took. The namespaces exist only for the test, and no traffic leaves
// them.
const (
	mhHeartbeat   = 200 * time.Millisecond
	mhPeerTimeout = 30 * time.Second // far beyond the partition
	mhTasks       = 600
	mhRange       = 500
	mhLimit       = 2 * time.Minute // a test that reaches it has hung
	mhPort        = 7077
)

func TestMultiHostJobSurvivesDelayLossAndAPartition(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs the ip command (iproute2) to create network namespaces: %v", err)
	}
	bin := buildBinary(t)
	for _, scheme := range []string{"tcp", "quic"} {
		t.Run(scheme, func(t *testing.T) { multiHostJob(t, bin, scheme) })
	}
}

func multiHostJob(t *testing.T, bin, scheme string) {
	n := newNamespaces(t, scheme, 4) // host 0: the driver; 1-3: the executors
	var routes []string
	for i := 1; i <= 3; i++ {
		routes = append(routes, fmt.Sprintf("%s:%d=%s:%d", n.hubAddr(i), mhPort, n.hostAddr(0), mhPort))
	}
	kind := "tcp"
	faults := faultproxy.Faults{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 1}
	if scheme == "quic" {
		kind, faults.Loss = "udp", 0.01
	}
	proxy := startProxyChild(t, n.ns(hub), kind, routes, faults)

	beat, pt := mhHeartbeat.String(), mhPeerTimeout.String()
	start := time.Now()
	listening := make(chan string, 1)
	driverErr := &lockedBuffer{}
	driver := startWith(t, "ip", listening, driverErr, "netns", "exec", n.ns(0), bin, "-role", "driver",
		"-listen", fmt.Sprintf("%s://%s:%d", scheme, n.hostAddr(0), mhPort), "-executors", "3",
		"-tasks", strconv.Itoa(mhTasks), "-range", strconv.Itoa(mhRange), "-heartbeat", beat, "-peer-timeout", pt)
	select {
	case line := <-listening:
		if !strings.HasPrefix(line, "driver: ") {
			t.Fatalf("the driver's first line is %q, want its address", line)
		}
	case <-driver.exited:
		t.Fatalf("the driver exited before listening: %v", driver.err)
	case <-time.After(mhLimit):
		t.Fatal("the driver never said where it listens")
	}
	execs := make([]*proc, 4)
	for i := 1; i <= 3; i++ {
		execs[i] = startWith(t, "ip", nil, &lockedBuffer{}, "netns", "exec", n.ns(i), bin, "-role", "executor",
			"-driver", fmt.Sprintf("%s://%s:%d/driver", scheme, n.hubAddr(i), mhPort), "-id", fmt.Sprintf("exec-%d", i),
			"-heartbeat", beat, "-peer-timeout", pt, "-lookup-timeout", "30s")
	}
	for i := 1; i <= 3; i++ {
		execs[i].stderr.awaitMatch(t, regexp.MustCompile(`registered with`), execs[i].exited, mhLimit, fmt.Sprintf("exec-%d to register", i))
	}

	// Mid-job: once the driver has counted some results, exec-2 is cut
	// off until the driver expires it, and then heals.
	driverErr.awaitMatch(t, regexp.MustCompile(`progress: [1-9][0-9]*/`), driver.exited, mhLimit, "the job's first results")
	proxy.do(t, "partition", 2)
	cut := time.Now()
	driverErr.awaitMatch(t, regexp.MustCompile(`lost executor exec-2 \(no heartbeat`), driver.exited, mhLimit, "the driver to expire the partitioned exec-2")
	proxy.do(t, "heal", 2)
	healed := time.Since(cut)
	execs[2].stderr.awaitMatch(t, regexp.MustCompile(`registered again`), execs[2].exited, mhLimit, "exec-2 to register again")

	awaitExit(t, driver, "the driver")
	if driver.err != nil {
		t.Fatalf("the driver failed: %v", driver.err)
	}
	out := driver.stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\(expected \d+\): OK`),
		regexp.MustCompile(`1 lost \(exec-2\), 1 registered again \(exec-2\)`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the summary does not match %q:\n%s", want, out)
		}
	}
	t.Logf("%s: %d tasks on 3 executors across namespaces, 20ms±5ms each way%s, exec-2 partitioned for %v: job done in %v",
		scheme, mhTasks, map[bool]string{true: ", 1% loss", false: ""}[faults.Loss > 0], healed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// hub is the index of the hub namespace in namespaces.
const hub = -1

// namespaces are the network namespaces of one multi-host run: a hub,
// and hosts joined to it each by a veth pair on 10.99.<i>.0/30 (the
// hub's end .1, the host's end .2). Hosts reach only the hub, the hub
// every host; there is no routing and no traffic out of them. They are
// deleted when the test ends.
type namespaces struct {
	prefix string
}

func newNamespaces(t *testing.T, tag string, hosts int) *namespaces {
	n := &namespaces{prefix: fmt.Sprintf("rpcenv-%d-%s", os.Getpid(), tag)}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	add := func(ns string) {
		t.Helper()
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() }) // its veth ends go with it
		ip("netns", "add", ns)
		ip("-n", ns, "link", "set", "lo", "up")
	}
	add(n.ns(hub))
	for i := range hosts {
		add(n.ns(i))
		a, b := fmt.Sprintf("r%d%c%da", os.Getpid(), tag[0], i), fmt.Sprintf("r%d%c%db", os.Getpid(), tag[0], i)
		ip("link", "add", a, "type", "veth", "peer", "name", b)
		ip("link", "set", a, "netns", n.ns(hub))
		ip("link", "set", b, "netns", n.ns(i))
		ip("-n", n.ns(hub), "addr", "add", n.hubAddr(i)+"/30", "dev", a)
		ip("-n", n.ns(i), "addr", "add", n.hostAddr(i)+"/30", "dev", b)
		ip("-n", n.ns(hub), "link", "set", a, "up")
		ip("-n", n.ns(i), "link", "set", b, "up")
	}
	return n
}

func (n *namespaces) ns(i int) string {
	if i == hub {
		return n.prefix + "-hub"
	}
	return fmt.Sprintf("%s-h%d", n.prefix, i)
}

// hubAddr is the hub's address on host i's link; hostAddr is host i's.
func (n *namespaces) hubAddr(i int) string  { return fmt.Sprintf("10.99.%d.1", i) }
func (n *namespaces) hostAddr(i int) string { return fmt.Sprintf("10.99.%d.2", i) }

// The proxy runs as this test binary in the hub namespace (see TestMain
// and runProxyChild): a socket belongs to the namespace of the thread
// that made it, so the proxies must live in a process started there.
const (
	proxyEnv       = "RPCENV_CLUSTER_PROXY"        // "tcp" or "udp": run as the proxy
	proxyRoutesEnv = "RPCENV_CLUSTER_PROXY_ROUTES" // listen=target,...
	proxyFaultsEnv = "RPCENV_CLUSTER_PROXY_FAULTS" // delay,jitter,loss,seed
)

// proxyChild is the proxy process, driven through its stdin: each
// command line is answered by one line on its stdout.
type proxyChild struct {
	in  io.Writer
	out *bufio.Reader
}

func startProxyChild(t *testing.T, ns, kind string, routes []string, f faultproxy.Faults) *proxyChild {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), proxyEnv+"="+kind, proxyRoutesEnv+"="+strings.Join(routes, ","),
		fmt.Sprintf("%s=%d,%d,%g,%d", proxyFaultsEnv, f.Delay, f.Jitter, f.Loss, f.Seed))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the proxy: %v", err)
	}
	t.Cleanup(func() {
		in.Close() // the proxy closes and exits
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(mhLimit):
			cmd.Process.Kill()
			<-done
		}
	})
	p := &proxyChild{in: in, out: bufio.NewReader(out)}
	p.expect(t, "ready")
	return p
}

// do has the proxy of executor i (1-based) partition or heal.
func (p *proxyChild) do(t *testing.T, cmd string, i int) {
	t.Helper()
	if _, err := fmt.Fprintf(p.in, "%s %d\n", cmd, i); err != nil {
		t.Fatalf("tell the proxy to %s %d: %v", cmd, i, err)
	}
	p.expect(t, "ok")
}

// expect reads the proxy's next line, which must be want. A proxy that
// dies ends the read with EOF; the read is bounded by the test's
// timeout, as the proxy answers at once.
func (p *proxyChild) expect(t *testing.T, want string) {
	t.Helper()
	line, err := p.out.ReadString('\n')
	if strings.TrimSpace(line) != want {
		t.Fatalf("the proxy said %q (%v), want %q", line, err, want)
	}
}

// runProxyChild is the proxy process's main.
func runProxyChild() int {
	var f faultproxy.Faults
	var delay, jitter int64
	if _, err := fmt.Sscanf(strings.ReplaceAll(os.Getenv(proxyFaultsEnv), ",", " "), "%d %d %g %d", &delay, &jitter, &f.Loss, &f.Seed); err != nil {
		fmt.Fprintln(os.Stderr, "proxy: bad", proxyFaultsEnv, err)
		return 2
	}
	f.Delay, f.Jitter = time.Duration(delay), time.Duration(jitter)
	type proxy interface {
		Set(faultproxy.Faults)
		Partition()
		Heal()
		Close() error
	}
	var ps []proxy
	defer func() {
		for _, p := range ps {
			p.Close()
		}
	}()
	for _, r := range strings.Split(os.Getenv(proxyRoutesEnv), ",") {
		listen, target, _ := strings.Cut(r, "=")
		var p proxy
		var err error
		if os.Getenv(proxyEnv) == "udp" {
			p, err = faultproxy.NewUDP(listen, target)
		} else {
			p, err = faultproxy.NewTCP(listen, target)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			return 1
		}
		p.Set(f)
		ps = append(ps, p)
	}
	fmt.Println("ready")
	s := bufio.NewScanner(os.Stdin)
	for s.Scan() { // until the test closes our stdin
		var cmd string
		var i int
		if _, err := fmt.Sscanf(s.Text(), "%s %d", &cmd, &i); err != nil || i < 1 || i > len(ps) {
			fmt.Println("bad command")
			continue
		}
		switch cmd {
		case "partition":
			ps[i-1].Partition()
		case "heal":
			ps[i-1].Heal()
		default:
			fmt.Println("bad command")
			continue
		}
		fmt.Println("ok")
	}
	return 0
}
