package core_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

type idle struct{}

func (idle) Receive(*core.Context, any) error { return nil }

// TestIdleEndpointsHoldNoGoroutines registers 100,000 endpoints and checks
// that the env started no goroutine for them.
func TestIdleEndpointsHoldNoGoroutines(t *testing.T) {
	e, err := core.NewEnv(core.Config{Name: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	before := runtime.NumGoroutine()
	for i := range 100_000 {
		if _, err := e.Register(fmt.Sprintf("ep-%d", i), idle{}); err != nil {
			t.Fatal(err)
		}
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines after registering 100,000 idle endpoints, %d before", after, before)
	}
}

// BenchmarkIdleEndpoints reports the heap an idle endpoint costs.
func BenchmarkIdleEndpoints(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		e, err := core.NewEnv(core.Config{Name: "idle"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := range n {
			if _, err := e.Register(fmt.Sprintf("ep-%d", i), idle{}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-B/endpoint")
		b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
		e.Shutdown(context.Background())
		b.StartTimer()
	}
}
