package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rpcenv/rpcenv/core"
	rpcotel "github.com/rpcenv/rpcenv/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// telemetry is what -ui and -trace turn on: metrics kept by a meter
// provider whose reader is a Prometheus exporter, served at the status
// page's /metrics, and spans of the first few tasks printed by a tracer
// provider (trace.go). rpcotel's interceptors feed both; rpcotel.Observe
// adds each env's own counters to the metrics.
//
// A nil *telemetry, which run uses when neither flag is given, instruments
// nothing: the envs get no interceptors and the job runs as without it.
type telemetry struct {
	registry *prometheus.Registry     // nil without -ui
	meters   *sdkmetric.MeterProvider // nil without -ui
	tracer   *sdktrace.TracerProvider // nil without -trace
	observed []func() error           // rpcotel.Observe's stops
}

// serviceName names the job's telemetry (the resource's service.name).
const serviceName = "rpcenv-cluster"

// newTelemetry sets up what cfg asks for: metrics when cfg.UI is set,
// spans when cfg.Trace is. It returns nil when neither is.
func newTelemetry(cfg config, stdout io.Writer) (*telemetry, error) {
	if cfg.UI == "" && cfg.Trace == "" {
		return nil, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", serviceName)))
	if err != nil {
		return nil, err
	}
	t := &telemetry{}
	if cfg.UI != "" {
		// A registry of its own, not Prometheus's default one: a process
		// (a test) may run several jobs, each with its own /metrics.
		t.registry = prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(t.registry))
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		t.meters = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	}
	switch cfg.Trace {
	case "":
	case "stdout":
		if t.tracer, err = newStdoutTracing(stdout, traceTasks, res); err != nil {
			return nil, err
		}
	default:
		return nil, usageError{fmt.Errorf("unknown -trace %q (want stdout)", cfg.Trace)}
	}
	return t, nil
}

// options are rpcotel's options for t's providers. A nil provider keeps
// rpcotel's default, the global one, which is a no-op unless the program
// sets one (this one does not).
func (t *telemetry) options() []rpcotel.Option {
	var opts []rpcotel.Option
	if t.meters != nil {
		opts = append(opts, rpcotel.WithMeterProvider(t.meters))
	}
	if t.tracer != nil {
		opts = append(opts, rpcotel.WithTracerProvider(t.tracer))
	}
	return opts
}

// instrument adds rpcotel's interceptors to an env's config: every send,
// ask and stream gets a span and a duration (rpc.client.call.duration,
// rpc.server.call.duration), and the trace context crosses in the
// messages' headers. Call it before core.NewEnv.
func (t *telemetry) instrument(c core.Config) core.Config {
	if t != nil {
		rpcotel.Instrument(&c, t.options()...)
	}
	return c
}

// observe reports env's own counters (the rpcenv.* instruments of
// rpcotel.Observe) until shutdown. Without -ui it does nothing.
func (t *telemetry) observe(env *core.Env) error {
	if t == nil || t.meters == nil {
		return nil
	}
	stop, err := rpcotel.Observe(env, rpcotel.WithMeterProvider(t.meters))
	if err != nil {
		return fmt.Errorf("metrics: observe env %s: %w", env.Name(), err)
	}
	t.observed = append(t.observed, stop)
	return nil
}

// meterProvider is the provider of the job's own instruments
// (metrics.go), or nil without -ui.
func (t *telemetry) meterProvider() metric.MeterProvider {
	if t == nil || t.meters == nil {
		return nil
	}
	return t.meters
}

// metricsHandler serves the metrics in Prometheus's text format, or is
// nil without -ui.
func (t *telemetry) metricsHandler() http.Handler {
	if t == nil || t.registry == nil {
		return nil
	}
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// shutdown stops observing, and flushes and stops the providers.
func (t *telemetry) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, stop := range t.observed {
		errs = append(errs, stop())
	}
	if t.meters != nil {
		errs = append(errs, t.meters.Shutdown(ctx))
	}
	if t.tracer != nil {
		errs = append(errs, t.tracer.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
