package main

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The job's own instruments, beside rpcotel's: what the driver knows of
// the job, read from its status when a reader collects (a scrape of
// /metrics), so the handlers record nothing.
const (
	metricTasksDone       = "cluster.tasks.done"       // counter: tasks counted
	metricTasksTotal      = "cluster.tasks.total"      // gauge: tasks in the job
	metricTasksRunning    = "cluster.tasks.running"    // gauge: launched, not reported
	metricTasksRelaunched = "cluster.tasks.relaunched" // counter: taken back from a lost executor
	metricExecutors       = "cluster.executors"        // gauge: executors, per state
)

// meterName is the instrumentation scope of the job's instruments.
const meterName = "github.com/rpcenv/rpcenv/examples/cluster"

// observeJob registers the job's instruments with mp, reading status
// each time. The returned function unregisters them.
func observeJob(mp metric.MeterProvider, status func() jobStatus) (stop func() error, err error) {
	m := mp.Meter(meterName)
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit("{task}"), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	done := counter(metricTasksDone, "Tasks whose result the driver counted.")
	relaunched := counter(metricTasksRelaunched, "Tasks taken back from a lost executor and launched again.")
	total := gauge(metricTasksTotal, "{task}", "Tasks in the job.")
	running := gauge(metricTasksRunning, "{task}", "Tasks launched and not reported yet.")
	executors := gauge(metricExecutors, "{executor}", "Executors the driver has known, per state.")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := status()
		o.ObserveInt64(done, s.Job.Done)
		o.ObserveInt64(relaunched, int64(s.Job.Relaunched))
		o.ObserveInt64(total, int64(s.Job.Tasks))
		o.ObserveInt64(running, int64(s.Job.Running))
		byState := map[string]int64{"registered": 0, "running": 0, "rejoined": 0, "lost": 0, "stopped": 0}
		for _, x := range s.Executors {
			byState[x.State]++
		}
		for state, n := range byState {
			o.ObserveInt64(executors, n, metric.WithAttributes(attribute.String("state", state)))
		}
		return nil
	}, done, relaunched, total, running, executors)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
