package core

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Files, after Spark's RpcEnvFileServer: an env serves the files and
// directories it was given, by name, to any env that opens their URI,
// over a stream (docs/PROTOCOL.md, "Files"). A file is read from disk as
// it is sent, never loaded whole.

// filesEndpoint is the name of the endpoint that serves an env's files;
// filesPath is the URI path files are found under.
const (
	filesEndpoint = "rpcenv.files"
	filesPath     = "files"
)

// FileServer serves an env's files. Get it with Env.Files. Its methods
// are safe for concurrent use.
type FileServer struct {
	env *Env

	mu    sync.Mutex
	up    bool                // the serving endpoint is registered
	files map[string]string   // name -> absolute path
	dirs  map[string]*os.Root // prefix -> the directory, opened so that nothing outside it can be reached
}

// Files returns the env's file server.
func (e *Env) Files() *FileServer { return e.files }

// AddFile serves the file at path under name, and returns its URI,
// "<env address>/files/<name>". name is a relative, slash-separated path
// without "." or ".." elements or empty elements ("jars/app.jar"); path
// must be a regular file. The file is opened anew for each request, so
// it is served as it is then. Adding a name again replaces it.
func (f *FileServer) AddFile(name, path string) (string, error) {
	if err := f.check(name); err != nil {
		return "", fmt.Errorf("rpcenv: add file %q: %w", name, err)
	}
	abs, err := filepath.Abs(path)
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(abs); err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", path)
		}
	}
	if err != nil {
		return "", fmt.Errorf("rpcenv: add file %q: %w", name, err)
	}
	if err := f.serve(); err != nil {
		return "", fmt.Errorf("rpcenv: add file %q: %w", name, err)
	}
	f.mu.Lock()
	f.files[name] = abs
	f.mu.Unlock()
	return f.uri(name), nil
}

// AddDirectory serves every regular file under dir, at
// "<env address>/files/<prefix>/<path relative to dir>", and returns the
// directory's URI, "<env address>/files/<prefix>". prefix follows
// AddFile's rules for names. Nothing outside dir can be reached through
// it: not through "..", and not through a symbolic link that leads out of
// it. Files added later under dir are served too.
func (f *FileServer) AddDirectory(prefix, dir string) (string, error) {
	if err := f.check(prefix); err != nil {
		return "", fmt.Errorf("rpcenv: add directory %q: %w", prefix, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("rpcenv: add directory %q: %w", prefix, err)
	}
	if err := f.serve(); err != nil {
		root.Close()
		return "", fmt.Errorf("rpcenv: add directory %q: %w", prefix, err)
	}
	f.mu.Lock()
	if old := f.dirs[prefix]; old != nil {
		old.Close()
	}
	f.dirs[prefix] = root
	f.mu.Unlock()
	return f.uri(prefix), nil
}

// Remove stops serving name: a file added with AddFile, or a directory
// added with AddDirectory. Transfers in progress go on.
func (f *FileServer) Remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, name)
	if root := f.dirs[name]; root != nil {
		root.Close()
		delete(f.dirs, name)
	}
}

// check refuses names no URI could carry, and a client-mode env, which
// has no address to serve at.
func (f *FileServer) check(name string) error {
	if !validFileName(name) {
		return errors.New("want a relative slash-separated path without '.', '..' or empty elements")
	}
	if f.env.addr == "" {
		return errors.New("a client-mode env has no address to serve files at (set Config.Listen)")
	}
	return nil
}

func validFileName(name string) bool { return name != "." && fs.ValidPath(name) }

func (f *FileServer) uri(name string) string {
	return f.env.addr + "/" + filesPath + "/" + name
}

// serve registers the endpoint that serves the files, once.
func (f *FileServer) serve() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up {
		return nil
	}
	if _, err := f.env.Register(filesEndpoint, fileEndpoint{f}, WithConcurrency(16)); err != nil {
		return err
	}
	f.up = true
	return nil
}

// close closes the served directories, at the end of the env.
func (f *FileServer) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, root := range f.dirs {
		root.Close()
	}
	clear(f.dirs)
	clear(f.files)
}

// open opens the file served as name, or fails with ErrNotFound.
func (f *FileServer) open(name string) (*os.File, int64, error) {
	notFound := fmt.Errorf("%w: no file %q is served here", ErrNotFound, name)
	if !validFileName(name) {
		return nil, 0, notFound
	}
	f.mu.Lock()
	path, ok := f.files[name]
	var root *os.Root
	var rel string
	if !ok {
		best := "" // the longest directory prefix of name wins
		for prefix, r := range f.dirs {
			if strings.HasPrefix(name, prefix+"/") && len(prefix) > len(best) {
				best, root = prefix, r
			}
		}
		if root != nil {
			rel = name[len(best)+1:]
		}
	}
	var file *os.File
	var err error
	switch {
	case ok:
		file, err = os.Open(path)
	case root != nil:
		file, err = root.Open(rel) // refuses to leave the directory
	default:
		f.mu.Unlock()
		return nil, 0, notFound
	}
	f.mu.Unlock()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", notFound, err)
	}
	st, err := file.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		file.Close()
		return nil, 0, fmt.Errorf("%w: %v", notFound, err)
	}
	return file, st.Size(), nil
}

// fileEndpoint is the endpoint that serves the files: the opening
// message of each stream is the file's name. It writes the file's size
// (8 bytes, big-endian), then the file, then closes.
type fileEndpoint struct{ f *FileServer }

func (fileEndpoint) Receive(c *Context, msg any) error {
	return fmt.Errorf("the file server answers streams only (Env.Open): %w", ErrNotAsk)
}

func (x fileEndpoint) ReceiveStream(c *Context, msg any, s *Stream) error {
	name, ok := msg.(string)
	if !ok {
		return fmt.Errorf("%w: a file request names the file with a string, not a %T", ErrNotFound, msg)
	}
	file, size, err := x.f.open(name)
	if err != nil {
		return err
	}
	go func() { // ends when the file is sent, or the stream fails
		defer file.Close()
		defer s.Close()
		var head [8]byte
		binary.BigEndian.PutUint64(head[:], uint64(size))
		if _, err := s.Write(head[:]); err != nil {
			return
		}
		buf := make([]byte, streamPiece)
		// onlyReader hides *os.File's WriterTo, so that the copy uses buf.
		if _, err := io.CopyBuffer(s, onlyReader{file}, buf); err != nil {
			s.CloseWithError(fmt.Errorf("read %s: %w", name, err))
		}
	}()
	return nil
}

type onlyReader struct{ io.Reader }

// Open reads the file at uri, "<env address>/files/<name>", as served by
// that env's FileServer (Files), and returns it as it arrives, without
// holding it whole. Any env may open files, a client-mode env too; the
// connection is the one messages use, with the same authentication. ctx
// bounds the opening only.
//
// It fails with ErrNotFound when the env serves no file of that name (or
// no files at all), and as OpenStream does when the env cannot be
// reached. If the transfer breaks, Read fails with the stream's error
// (or io.ErrUnexpectedEOF when the file came out shorter than announced),
// never with a bare io.EOF. Close the reader when done.
func (e *Env) Open(ctx context.Context, uri string) (io.ReadCloser, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	addr, path, _ := strings.Cut(rest, "/")
	name, isFile := strings.CutPrefix(path, filesPath+"/")
	switch {
	case !ok || scheme == "" || addr == "" || !isFile:
		return nil, fmt.Errorf("rpcenv: open %s: want scheme://address/%s/name", uri, filesPath)
	case !validFileName(name):
		return nil, fmt.Errorf("rpcenv: open %s: %w: %q is no name a file server serves (relative, no '.', '..' or empty elements)", uri, ErrNotFound, name)
	}
	envURI := scheme + "://" + addr
	var ref *Ref
	if envURI == e.addr {
		x := e.localEndpoint(filesEndpoint)
		if x == nil {
			return nil, fmt.Errorf("rpcenv: open %s: %w: this env serves no files", uri, ErrNotFound)
		}
		ref = x.self
	} else {
		ref = newRef(e, filesEndpoint, envURI, "", "")
	}
	s, err := ref.OpenStream(ctx, name)
	if errors.Is(err, ErrEndpointNotFound) {
		return nil, fmt.Errorf("rpcenv: open %s: %w: the env serves no files", uri, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rpcenv: open %s: %w", uri, err)
	}
	var head [8]byte
	if _, err := io.ReadFull(s, head[:]); err != nil {
		s.Close()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: the file server closed the stream before the file's size", ErrProtocol)
		}
		return nil, fmt.Errorf("rpcenv: open %s: %w", uri, err)
	}
	return &fileReader{s: s, left: int64(binary.BigEndian.Uint64(head[:])), uri: uri}, nil
}

// fileReader reads a file's bytes from its stream, and checks that as
// many arrive as were announced.
type fileReader struct {
	s    *Stream
	left int64
	uri  string
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.s.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		err = fmt.Errorf("rpcenv: open %s: the file ended %d bytes short: %w", r.uri, r.left, io.ErrUnexpectedEOF)
	} else if err != nil {
		err = fmt.Errorf("rpcenv: open %s: %w", r.uri, err)
	}
	return n, err
}

func (r *fileReader) Close() error { return r.s.Close() }
