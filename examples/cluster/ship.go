package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rpcenv/rpcenv/core"
	"github.com/rpcenv/rpcenv/examples/cluster/msg"
)

// What the job moves besides messages, through rpcenv's streams: the task
// code the driver ships to every executor (as Spark ships jars through
// its RpcEnv file server), and the one result too large for a message,
// the list of all primes below the job's limit.

// maxMessage is the envs' Config.MaxMessageSize: small, so that the list
// of primes cannot cross as a message and takes a stream.
const maxMessage = 64 << 10

// shipment is the file the driver serves to its executors.
type shipment struct {
	uri  string
	sum  [32]byte
	size int64
}

// ship serves path (the driver's own executable, or a generated file)
// from env's file server, and hashes it.
func ship(env *core.Env, path string) (shipment, error) {
	sum, size, err := hashFile(path)
	if err != nil {
		return shipment{}, fmt.Errorf("ship %s: %w", path, err)
	}
	uri, err := env.Files().AddFile("task/code", path)
	if err != nil {
		return shipment{}, err
	}
	return shipment{uri: uri, sum: sum, size: size}, nil
}

func hashFile(path string) ([32]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return [32]byte{}, 0, err
	}
	return [32]byte(h.Sum(nil)), n, nil
}

// writeShipFile writes size bytes of stand-in task code into dir, for a
// one-process run, which has no separate executable to ship.
func writeShipFile(dir string, size int64) (string, error) {
	path := filepath.Join(dir, "task-code.bin")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var block [4096]byte
	for i := range block {
		block[i] = byte(i * 31)
	}
	for left := size; left > 0; left -= int64(len(block)) {
		block[0]++ // no two blocks alike
		w.Write(block[:min(left, int64(len(block)))])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// fetch reads the shipped file by URI, checks its hash, and returns how
// long it took and how many bytes came.
func fetch(ctx context.Context, env *core.Env, uri string, want [32]byte) (time.Duration, int64, error) {
	start := time.Now()
	r, err := env.Open(ctx, uri)
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return 0, n, err
	}
	if [32]byte(h.Sum(nil)) != want {
		return 0, n, fmt.Errorf("the task code from %s has another SHA-256 than the driver announced", uri)
	}
	return time.Since(start), n, nil
}

// primesBelow lists the primes below n with a sieve of Eratosthenes:
// the driver's reference for the job's total and for the list task.
func primesBelow(n uint64) []uint64 {
	if n < 3 {
		return nil
	}
	composite := make([]bool, n)
	var ps []uint64
	for i := uint64(2); i < n; i++ {
		if composite[i] {
			continue
		}
		ps = append(ps, i)
		for k := i * i; k < n; k += i {
			composite[k] = true
		}
	}
	return ps
}

// sendList streams ps to the driver as ListPrimes, and waits for its
// verdict.
func sendList(ctx context.Context, driver msg.DriverRef, id string, task int64, ps []uint64) error {
	s, err := driver.OpenListPrimes(ctx, msg.ListPrimes{ExecutorID: id, TaskID: task, Primes: len(ps)})
	if err != nil {
		return err
	}
	defer s.Close()
	w := bufio.NewWriterSize(s, 64<<10)
	var b [8]byte
	for _, p := range ps {
		binary.LittleEndian.PutUint64(b[:], p)
		w.Write(b[:])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	var verdict [1]byte
	if _, err := io.ReadFull(s, verdict[:]); err != nil {
		return fmt.Errorf("the driver's verdict on the list: %w", err)
	}
	if verdict[0] != 1 {
		return fmt.Errorf("the driver found the list of %d primes wrong", len(ps))
	}
	return nil
}

// listReport is what the driver learned from the list task.
type listReport struct {
	executor string
	primes   int
	bytes    int64
	took     time.Duration
	ok       bool
	err      error
}

// readList reads a ListPrimes stream and checks it against want, the
// driver's own sieve.
func readList(m msg.ListPrimes, s *core.Stream, want []uint64) listReport {
	start := time.Now()
	rep := listReport{executor: m.ExecutorID, primes: m.Primes}
	r := bufio.NewReaderSize(s, 64<<10)
	var b [8]byte
	i := 0
	for {
		_, err := io.ReadFull(r, b[:])
		if err == io.EOF {
			break
		}
		if err != nil {
			rep.err = err
			return rep
		}
		rep.bytes += 8
		if i >= len(want) || binary.LittleEndian.Uint64(b[:]) != want[i] {
			rep.err = fmt.Errorf("prime %d of the list is wrong", i)
		}
		i++
	}
	rep.took = time.Since(start)
	if rep.err == nil && (i != len(want) || m.Primes != i) {
		rep.err = fmt.Errorf("the list has %d primes (it said %d); want %d", i, m.Primes, len(want))
	}
	rep.ok = rep.err == nil
	return rep
}
