package main

import (
	"math/bits"
	"time"
)

// The status page charts the task round trip as the driver measures it:
// from sending LaunchTask to receiving the task's StatusUpdate, the
// request and reply of the driver's own conversation with an executor.
// latencyRing keeps the last latencyWindow seconds of them as one
// histogram per second: memory is bounded whatever the task rate, and
// recording costs an index and an increment, under the driver's mutex,
// which StatusUpdate holds anyway.

const (
	latencyWindow = 60 // seconds kept
	// Bins are quarter octaves of microseconds: bin 4o+s holds the
	// durations in [(4+s)·2^o/4, (5+s)·2^o/4) µs, so a percentile read
	// from them is within 12% of the true value. The last bin takes
	// everything from 2^28 µs (about 4.5 minutes) up.
	latencyOctaves = 28
	latencyBins    = 4*latencyOctaves + 1
)

// latencyRing is a ring of per-second latency histograms. Its zero value
// is empty and ready. It is not safe for concurrent use: the driver's
// mutex guards it.
type latencyRing struct {
	secs [latencyWindow]latencySecond
}

// latencySecond is one second's histogram.
type latencySecond struct {
	sec    int64 // Unix second; 0 while unused
	n      uint32
	max    time.Duration
	counts [latencyBins]uint32
}

// add records d, measured at now. It does not allocate.
func (r *latencyRing) add(now time.Time, d time.Duration) {
	sec := now.Unix()
	s := &r.secs[sec%latencyWindow]
	if s.sec != sec {
		*s = latencySecond{sec: sec}
	}
	s.n++
	s.max = max(s.max, d)
	s.counts[latencyBin(d)]++
}

// latencyBin returns d's bin.
func latencyBin(d time.Duration) int {
	us := uint64(max(d/time.Microsecond, 1))
	o := bits.Len64(us) - 1 // us is in [2^o, 2^(o+1))
	if o >= latencyOctaves {
		return latencyBins - 1
	}
	var s uint64
	if o >= 2 {
		s = us >> (o - 2) & 3
	} else {
		s = us << (2 - o) & 3
	}
	return 4*o + int(s)
}

// binMid returns the middle of bin i.
func binMid(i int) time.Duration {
	o, s := i/4, i%4
	lo := float64(uint64(1)<<o) * float64(4+s) / 4
	return time.Duration((lo + float64(uint64(1)<<o)/8) * float64(time.Microsecond))
}

// latencyPoint is one second of the chart: how many round trips ended in
// it and their percentiles, in milliseconds.
type latencyPoint struct {
	Unix  int64   `json:"t"`
	N     uint32  `json:"n"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// points returns the seconds of the last latencyWindow before now that
// had a round trip, oldest first.
func (r *latencyRing) points(now time.Time) []latencyPoint {
	end := now.Unix()
	var ps []latencyPoint
	for sec := end - latencyWindow + 1; sec <= end; sec++ {
		s := &r.secs[(sec%latencyWindow+latencyWindow)%latencyWindow]
		if s.sec != sec || s.n == 0 {
			continue
		}
		ps = append(ps, latencyPoint{Unix: sec, N: s.n, P50Ms: ms(s.percentile(50)), P99Ms: ms(s.percentile(99)), MaxMs: ms(s.max)})
	}
	return ps
}

// percentile returns the p-th percentile (nearest rank) of the second,
// as the middle of its bin, at most the second's maximum.
func (s *latencySecond) percentile(p float64) time.Duration {
	rank := uint32(p/100*float64(s.n) + 0.5)
	rank = min(max(rank, 1), s.n)
	var seen uint32
	for i, c := range s.counts {
		if seen += c; seen >= rank {
			return min(binMid(i), s.max)
		}
	}
	return s.max
}

// ms converts d to fractional milliseconds, for JSON.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
