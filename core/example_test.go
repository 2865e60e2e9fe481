package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fxamacker/cbor/v2"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/transports/inproc"
)

// Greet is a message; Greeting answers it.
type Greet struct{ Name string }
type Greeting struct{ Text string }

func init() {
	core.RegisterMessage[Greet]("example.Greet")
	core.RegisterMessage[Greeting]("example.Greeting")
}

// greeter is an endpoint: it answers Greet asks.
type greeter struct{}

func (greeter) Receive(c *core.Context, msg any) error {
	g := msg.(Greet)
	return c.Reply(Greeting{Text: "hello, " + g.Name})
}

// Two envs, one listening and one in client mode, exchange an ask.
func Example() {
	ns := inproc.New()
	server, _ := core.NewEnv(core.Config{Listen: "inproc://server", Transports: []core.Transport{ns}})
	defer server.Shutdown(context.Background())
	server.Register("greeter", greeter{})

	client, _ := core.NewEnv(core.Config{Transports: []core.Transport{ns}})
	defer client.Shutdown(context.Background())
	ref, err := client.Lookup(context.Background(), "inproc://server/greeter")
	if err != nil {
		panic(err)
	}
	reply, err := core.Ask[Greeting](context.Background(), ref, Greet{Name: "rpcenv"})
	fmt.Println(reply.Text, err)
	// Output: hello, rpcenv <nil>
}

// An env without transports delivers between its own endpoints, without
// encoding anything.
func ExampleEnv_Register() {
	env, _ := core.NewEnv(core.Config{Name: "local"})
	defer env.Shutdown(context.Background())
	ref, _ := env.Register("greeter", greeter{})
	reply, _ := ref.Ask(context.Background(), Greet{Name: "local"})
	fmt.Println(reply.(Greeting).Text)
	// Output: hello, local
}

// Sends are fire-and-forget; an endpoint that wants to know about
// failures implements ErrorHandler.
func ExampleRef_Send() {
	env, _ := core.NewEnv(core.Config{})
	defer env.Shutdown(context.Background())
	got := make(chan string, 1)
	ref, _ := env.Register("inbox", endpointFunc(func(c *core.Context, msg any) error {
		got <- msg.(string)
		return nil
	}))
	ref.Send("a string needs no registration")
	fmt.Println(<-got)
	// Output: a string needs no registration
}

// A registered struct type travels as itself; an unregistered one is
// refused at once, wherever the endpoint lives.
func ExampleRegisterMessage() {
	type Unknown struct{ X int }
	env, _ := core.NewEnv(core.Config{})
	defer env.Shutdown(context.Background())
	ref, _ := env.Register("greeter", greeter{})
	err := ref.Send(Unknown{X: 1})
	fmt.Println(err != nil)
	// Output: true
}

// A ref that user code decodes itself, here from bytes saved earlier,
// is unusable until Bind binds it to an env. Decoded into an untyped
// value, a ref is a cbor.Tag; Bind turns it into a *core.Ref in place.
func ExampleEnv_Bind() {
	ns := inproc.New()
	server, _ := core.NewEnv(core.Config{Listen: "inproc://server", Transports: []core.Transport{ns}})
	defer server.Shutdown(context.Background())
	greeterRef, _ := server.Register("greeter", greeter{})
	saved, _ := cbor.Marshal(map[string]any{"greeter": greeterRef}) // to a file, a database...

	client, _ := core.NewEnv(core.Config{Transports: []core.Transport{ns}})
	defer client.Shutdown(context.Background())
	var loaded map[string]any
	if err := cbor.Unmarshal(saved, &loaded); err != nil {
		panic(err)
	}
	fmt.Printf("decoded: %T\n", loaded["greeter"])
	if err := client.Bind(loaded); err != nil {
		panic(err)
	}
	ref := loaded["greeter"].(*core.Ref)
	reply, err := core.Ask[Greeting](context.Background(), ref, Greet{Name: ref.String()})
	fmt.Println(reply.Text, err)
	// Output:
	// decoded: cbor.Tag
	// hello, inproc://server/greeter <nil>
}

type endpointFunc func(c *core.Context, msg any) error

func (f endpointFunc) Receive(c *core.Context, msg any) error { return f(c, msg) }

// Upload is the opening message of an upload stream.
type Upload struct{ Name string }

func init() { core.RegisterMessage[Upload]("example.Upload") }

// uploads is a StreamHandler: it reads each upload to its end and
// answers with how many bytes it got.
type uploads struct{}

func (uploads) Receive(c *core.Context, msg any) error { return nil }

func (uploads) ReceiveStream(c *core.Context, msg any, s *core.Stream) error {
	go func() { // the stream outlives ReceiveStream
		defer s.Close()
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.CloseWithError(err)
			return
		}
		fmt.Fprintf(s, "%s: %d bytes", msg.(Upload).Name, n)
	}()
	return nil
}

// A client opens a stream to an endpoint of a server, writes more than
// one message could carry, half-closes, and reads the answer.
func ExampleRef_OpenStream() {
	ns := inproc.New()
	server, _ := core.NewEnv(core.Config{Listen: "inproc://server", Transports: []core.Transport{ns}})
	defer server.Shutdown(context.Background())
	server.Register("uploads", uploads{})

	client, _ := core.NewEnv(core.Config{Transports: []core.Transport{ns}})
	defer client.Shutdown(context.Background())
	ref, _ := client.Lookup(context.Background(), "inproc://server/uploads")
	s, err := ref.OpenStream(context.Background(), Upload{Name: "data.bin"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Write(make([]byte, 20<<20)) // 20 MiB: the window paces it
	s.CloseWrite()
	answer, err := io.ReadAll(s)
	fmt.Println(string(answer), err)
	// Output: data.bin: 20971520 bytes <nil>
}

// A StreamHandler that returns an error aborts the stream: the opener's
// Read fails with that error's text.
func ExampleStreamHandler() {
	env, _ := core.NewEnv(core.Config{Listen: "inproc://local", Transports: []core.Transport{inproc.New()}})
	defer env.Shutdown(context.Background())
	ref, _ := env.Register("picky", refuser{})
	s, _ := ref.OpenStream(context.Background(), Upload{Name: "huge.bin"})
	_, err := s.Read(make([]byte, 1))
	fmt.Println(err)
	// Output: rpcenv: remote inproc://local/picky: no room for huge.bin
}

type refuser struct{}

func (refuser) Receive(c *core.Context, msg any) error { return nil }

func (refuser) ReceiveStream(c *core.Context, msg any, s *core.Stream) error {
	return fmt.Errorf("no room for %s", msg.(Upload).Name)
}

// A driver serves a file; an executor, in client mode, reads it by URI
// as it arrives.
func ExampleEnv_Open() {
	dir, _ := os.MkdirTemp("", "rpcenv-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "task.conf"), []byte("partitions = 8\n"), 0o644)

	ns := inproc.New()
	driver, _ := core.NewEnv(core.Config{Listen: "inproc://driver", Transports: []core.Transport{ns}})
	defer driver.Shutdown(context.Background())
	uri, _ := driver.Files().AddFile("conf/task.conf", filepath.Join(dir, "task.conf"))

	executor, _ := core.NewEnv(core.Config{Transports: []core.Transport{ns}})
	defer executor.Shutdown(context.Background())
	r, err := executor.Open(context.Background(), uri)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	conf, _ := io.ReadAll(r)
	fmt.Print(uri, ": ", string(conf))
	// Output: inproc://driver/files/conf/task.conf: partitions = 8
}

// A directory is served whole, under a prefix; nothing outside it can be
// reached, and a name that is not served is ErrNotFound.
func ExampleFileServer_AddDirectory() {
	dir, _ := os.MkdirTemp("", "rpcenv-example")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "util.jar"), []byte("jar bytes"), 0o644)

	env, _ := core.NewEnv(core.Config{Listen: "inproc://server", Transports: []core.Transport{inproc.New()}})
	defer env.Shutdown(context.Background())
	uri, _ := env.Files().AddDirectory("jars", dir)

	r, _ := env.Open(context.Background(), uri+"/lib/util.jar")
	jar, _ := io.ReadAll(r)
	r.Close()
	_, err := env.Open(context.Background(), uri+"/../../etc/passwd")
	fmt.Println(string(jar), errors.Is(err, core.ErrNotFound))
	// Output: jar bytes true
}

// ErrQuotaExceeded is an application's error that keeps its identity
// across envs.
var ErrQuotaExceeded = errors.New("quota exceeded")

func init() { core.RegisterError("example.quota_exceeded", ErrQuotaExceeded) }

// An endpoint answers an ask with an error wrapping a registered error:
// the asker, in another env, tests for it with errors.Is.
func ExampleRegisterError() {
	t := inproc.New()
	billing, err := core.NewEnv(core.Config{Listen: "inproc://billing", Transports: []core.Transport{t}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer billing.Close()
	billing.Register("accounts", endpointFunc(func(c *core.Context, msg any) error {
		return fmt.Errorf("account %s: %w", msg, ErrQuotaExceeded)
	}))
	shop, err := core.NewEnv(core.Config{Transports: []core.Transport{t}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shop.Close()
	ctx := context.Background()
	accounts, err := shop.Lookup(ctx, "inproc://billing/accounts")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = accounts.Ask(ctx, "42")
	var re *core.RemoteError
	fmt.Println(errors.Is(err, ErrQuotaExceeded), errors.As(err, &re) && re.Code == "example.quota_exceeded")
	fmt.Println(re.Message)
	// Output:
	// true true
	// account 42: quota exceeded
}
