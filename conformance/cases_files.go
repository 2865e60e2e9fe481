package conformance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// openAll opens uri from e and reads it whole.
func openAll(t *testing.T, e *core.Env, uri string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	r, err := e.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// serveTree makes a directory with a file, a file in a subdirectory, and
// a symbolic link that leads out of it, next to a secret file outside.
func serveTree(t *testing.T) (dir, secret string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "served")
	secret = filepath.Join(base, "secret")
	for path, data := range map[string][]byte{
		filepath.Join(dir, "a.bin"):        pattern(3<<20, 1),
		filepath.Join(dir, "sub", "b.txt"): []byte("in a subdirectory"),
		secret:                             []byte("not to be served"),
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(secret, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

var fileCases = concat(
	across("ServesAddedFilesAndDirectories", all, func(t *testing.T, h *harness, at, from *core.Env) {
		dir, _ := serveTree(t)
		fileURI, err := at.Files().AddFile("jars/app.bin", filepath.Join(dir, "a.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if want := at.Address() + "/files/jars/app.bin"; fileURI != want {
			t.Errorf("AddFile's URI = %q, want %q", fileURI, want)
		}
		dirURI, err := at.Files().AddDirectory("data", dir)
		if err != nil {
			t.Fatal(err)
		}
		for uri, want := range map[string][]byte{
			fileURI:               pattern(3<<20, 1),
			dirURI + "/a.bin":     pattern(3<<20, 1),
			dirURI + "/sub/b.txt": []byte("in a subdirectory"),
		} {
			got, err := openAll(t, from, uri)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("Open(%s) = %d bytes, %v; want the file's %d bytes", uri, len(got), err, len(want))
			}
		}
		at.Files().Remove("jars/app.bin")
		if _, err := openAll(t, from, fileURI); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Open of a removed file: %v, want ErrNotFound", err)
		}
	}),
	across("AMissingFileIsErrNotFound", all, func(t *testing.T, h *harness, at, from *core.Env) {
		if _, err := openAll(t, from, at.Address()+"/files/nothing.txt"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Open on an env that serves no files: %v, want ErrNotFound", err)
		}
		dir, _ := serveTree(t)
		if _, err := at.Files().AddDirectory("data", dir); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"nothing.txt", "data/nothing.txt", "data/sub"} {
			if _, err := openAll(t, from, at.Address()+"/files/"+name); !errors.Is(err, core.ErrNotFound) {
				t.Errorf("Open(files/%s): %v, want ErrNotFound", name, err)
			}
		}
	}),
	across("PathEscapesAreRefused", all, func(t *testing.T, h *harness, at, from *core.Env) {
		dir, secret := serveTree(t)
		if _, err := at.Files().AddDirectory("data", dir); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"data/escape", "data/../secret", "../secret", "data//a.bin", "/etc/passwd", "data/./a.bin"} {
			got, err := openAll(t, from, at.Address()+"/files/"+name)
			if err == nil || bytes.Contains(got, []byte("not to be served")) {
				t.Errorf("Open(files/%s) = %q, %v; want it refused", name, got, err)
			}
		}
		for _, name := range []string{"../x", "/abs", "a//b", ".", "", "a/../b"} {
			if _, err := at.Files().AddFile(name, secret); err == nil {
				t.Errorf("AddFile(%q) was accepted", name)
			}
		}
	}),
)
