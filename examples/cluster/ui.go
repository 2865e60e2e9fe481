package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// The status page (-ui): while the job runs, the driver serves
//
//	/            ui.html: the executors, the progress and a chart of
//	             the task round trips, refreshed from /api/status
//	/api/status  the driver's status as JSON (status.go)
//	/metrics     the metrics in Prometheus's text format (telemetry.go)
//
// The page is one embedded file with its CSS and JS inline: no build
// step, nothing fetched from elsewhere.

//go:embed ui.html
var uiPage []byte

// uiServer is the status page's HTTP server. Its goroutine is owned by
// the server: close stops it and waits for it.
type uiServer struct {
	srv     *http.Server
	addr    string
	served  chan struct{} // closed when Serve returns
	onClose func() error  // nil, or what close undoes besides
}

// serveStatus serves the status page of d's job on cfg.UI, says where on
// stderr, and registers the job's own instruments (metrics.go) with the
// meter provider of /metrics. close undoes both.
func serveStatus(cfg config, d *driver, env *core.Env, transport string, stderr io.Writer) (*uiServer, error) {
	var stopJob func() error
	if mp := cfg.tel.meterProvider(); mp != nil {
		var err error
		if stopJob, err = observeJob(mp, func() jobStatus { return d.status(nil, transport) }); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	u, err := startUI(cfg.UI, func() jobStatus { return d.status(env, transport) }, cfg.tel.metricsHandler())
	if err != nil {
		if stopJob != nil {
			stopJob()
		}
		return nil, fmt.Errorf("-ui %s: %w", cfg.UI, err)
	}
	u.onClose = stopJob
	fmt.Fprintf(stderr, "ui: %s (the job's status; %smetrics for Prometheus)\n", u.url(), u.url())
	if cfg.uiUp != nil {
		cfg.uiUp(u.url())
	}
	return u, nil
}

// startUI listens on addr ("host:port"; port 0 picks one) and serves the
// page, status() as /api/status and metrics (when not nil) as /metrics.
func startUI(addr string, status func() jobStatus, metrics http.Handler) (*uiServer, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(uiPage)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(status())
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	u := &uiServer{
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr:   ln.Addr().String(),
		served: make(chan struct{}),
	}
	go func() {
		defer close(u.served)
		u.srv.Serve(ln) // returns http.ErrServerClosed once close is called
	}()
	return u, nil
}

// url is the page's address.
func (u *uiServer) url() string { return "http://" + u.addr + "/" }

// close stops serving: requests under way get a moment to finish, then
// every connection is closed. It waits for the server's goroutine.
func (u *uiServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := u.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = u.srv.Close()
	}
	<-u.served
	if u.onClose != nil {
		err = errors.Join(err, u.onClose())
	}
	return err
}
