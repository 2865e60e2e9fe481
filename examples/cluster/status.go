package main

import (
	"slices"
	"strings"
	"time"

	"github.com/rpcenv/rpcenv/core"
)

// jobStatus is the driver's view of the job at one moment, as
// /api/status serves it: the job's progress, every executor the driver
// has known, the recent task round trips and the driver env's counters.
type jobStatus struct {
	Job       jobProgress      `json:"job"`
	Executors []executorStatus `json:"executors"`
	// RoundTrips are the last minute's task round trips (LaunchTask sent
	// to StatusUpdate received), per second.
	RoundTrips []latencyPoint `json:"roundTrips"`
	Driver     envStatus      `json:"driver"`
	Now        int64          `json:"now"` // the driver's clock, in Unix seconds: the chart's right edge
}

// jobProgress is the job as a whole.
type jobProgress struct {
	Transport  string  `json:"transport"`  // inproc, tcp, quic, or the driver's address
	Tasks      int     `json:"tasks"`      // in the job
	RangeSize  uint64  `json:"rangeSize"`  // numbers per task
	Limit      uint64  `json:"limit"`      // the job counts the primes below it
	Done       int64   `json:"done"`       // tasks counted
	Running    int     `json:"running"`    // launched and not reported
	Pending    int     `json:"pending"`    // waiting for a free core
	Relaunched int     `json:"relaunched"` // taken back from a lost executor
	Started    bool    `json:"started"`    // enough executors registered
	Finished   bool    `json:"finished"`   // every task counted
	ElapsedMs  float64 `json:"elapsedMs"`  // since the job started, until it finished
	Registered int     `json:"registered"` // registrations, re-registrations included
	Lost       int     `json:"lost"`       // executors dropped while the job ran
	Rejoined   int     `json:"rejoined"`   // of those, the ones that registered again
}

// executorStatus is one executor, registered now or not any more.
type executorStatus struct {
	ID string `json:"id"`
	// State is "registered" (idle), "running" (has tasks),
	// "rejoined" (registered again after it was lost), "lost" (dropped
	// while the job ran: disconnected or silent) or "stopped" (left once
	// the job was over).
	State   string `json:"state"`
	Cores   int    `json:"cores"`
	Running int    `json:"running"` // tasks launched on it and not reported
	Done    int    `json:"done"`    // tasks it reported first
	Failed  int    `json:"failed"`  // tasks taken back from it when it was lost
	// HeartbeatAgoMs is how long ago its last heartbeat (or registration)
	// arrived; HeartbeatMs is the interval it promised.
	HeartbeatAgoMs float64 `json:"heartbeatAgoMs"`
	HeartbeatMs    float64 `json:"heartbeatMs"`
	// Remote is the connection it registered over; Connected is whether
	// that connection is up in the driver's env, and then BytesIn,
	// BytesOut and HeardAgoMs describe it.
	Remote     string  `json:"remote"`
	Connected  bool    `json:"connected"`
	BytesIn    uint64  `json:"bytesIn"`
	BytesOut   uint64  `json:"bytesOut"`
	HeardAgoMs float64 `json:"heardAgoMs"`
}

// envStatus is the driver env's counters (core.Env.Stats).
type envStatus struct {
	Name            string           `json:"name"`
	Address         string           `json:"address"`
	DeadLetters     uint64           `json:"deadLetters"`
	ConnectionsUp   uint64           `json:"connectionsUp"`
	ConnectionsLost uint64           `json:"connectionsLost"`
	Peers           int              `json:"peers"`
	StreamBytesIn   uint64           `json:"streamBytesIn"`
	StreamBytesOut  uint64           `json:"streamBytesOut"`
	Endpoints       []endpointStatus `json:"endpoints"`
}

// endpointStatus is one of the driver env's endpoints (core.EndpointStats).
type endpointStatus struct {
	Name    string `json:"name"`
	Queued  int    `json:"queued"`
	Handled uint64 `json:"handled"`
	Failed  uint64 `json:"failed"`
}

// status returns the job's status: the driver's state, copied under its
// mutex, with env's counters, read outside it. env may be nil.
func (d *driver) status(env *core.Env, transport string) jobStatus {
	now := time.Now()
	d.mu.Lock()
	st := jobStatus{Now: now.Unix(), Job: jobProgress{
		Transport:  transport,
		Tasks:      d.job.Tasks,
		RangeSize:  d.job.RangeSize,
		Limit:      d.job.limit(),
		Done:       d.finished.Load(),
		Pending:    len(d.pending),
		Relaunched: len(d.relaunched),
		Started:    !d.started.IsZero(),
		Registered: d.registerCount,
		Lost:       len(d.lost),
		Rejoined:   len(d.rejoined),
	}}
	st.Job.Finished = st.Job.Done == int64(d.job.Tasks)
	switch {
	case st.Job.Finished && !d.started.IsZero():
		st.Job.ElapsedMs = ms(d.elapsed)
	case st.Job.Started:
		st.Job.ElapsedMs = ms(now.Sub(d.started))
	}
	all := make([]*execState, 0, len(d.execs)+len(d.gone))
	for _, x := range d.execs {
		all = append(all, x)
	}
	for _, x := range d.gone {
		all = append(all, x)
	}
	for _, x := range all {
		e := executorStatus{ID: x.id, Cores: x.cores, Done: d.perExec[x.id], Failed: d.failedOn[x.id],
			HeartbeatAgoMs: ms(now.Sub(x.lastBeat)), HeartbeatMs: ms(x.heartbeat), Remote: x.sender}
		switch {
		case x.ended != "":
			e.State = x.ended
		case slices.Contains(d.rejoined, x.id):
			e.State, e.Running = "rejoined", len(x.running)
		case len(x.running) > 0:
			e.State, e.Running = "running", len(x.running)
		default:
			e.State = "registered"
		}
		st.Job.Running += e.Running
		st.Executors = append(st.Executors, e)
	}
	ring := d.roundTrips // a copy, to read outside the lock
	d.mu.Unlock()

	slices.SortFunc(st.Executors, func(a, b executorStatus) int { return strings.Compare(a.ID, b.ID) })
	st.RoundTrips = ring.points(now)
	if env == nil {
		return st
	}
	es := env.Stats()
	st.Driver = envStatus{Name: es.Name, Address: es.Address, DeadLetters: es.DeadLetters, ConnectionsUp: es.ConnectionsUp,
		ConnectionsLost: es.ConnectionsLost, Peers: len(es.Peers), StreamBytesIn: es.StreamBytesIn, StreamBytesOut: es.StreamBytesOut}
	for _, ep := range es.Endpoints {
		st.Driver.Endpoints = append(st.Driver.Endpoints, endpointStatus{Name: ep.Name, Queued: ep.Queued, Handled: ep.Handled, Failed: ep.Failed})
	}
	for i := range st.Executors {
		e := &st.Executors[i]
		if e.State == "lost" || e.State == "stopped" {
			continue
		}
		for _, p := range es.Peers {
			if p.Remote == e.Remote && !p.Closing {
				e.Connected, e.BytesIn, e.BytesOut = true, p.BytesIn, p.BytesOut
				if !p.LastHeard.IsZero() {
					e.HeardAgoMs = ms(now.Sub(p.LastHeard))
				}
				break
			}
		}
	}
	return st
}
