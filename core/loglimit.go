package core

import (
	"sync/atomic"
	"time"
)

// logEvery is the least time between two log lines of one kind (dead
// letters, refused connections, accept errors): a flood of events must
// not become a flood of log lines.
const logEvery = time.Second

// logLimiter lets one log line of a kind through per interval and counts
// the events it kept quiet, so that the next line can say how many.
type logLimiter struct {
	every   time.Duration // 0 means logEvery
	last    atomic.Int64  // when the last line was let through (Unix ns); 0: never
	skipped atomic.Uint64 // events not logged since
}

// allow reports whether this event may be logged now and, if so, how
// many events were left out since the last line.
func (l *logLimiter) allow() (ok bool, skipped uint64) {
	every := l.every
	if every == 0 {
		every = logEvery
	}
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(every) || !l.last.CompareAndSwap(last, now) {
		l.skipped.Add(1)
		return false, 0
	}
	return true, l.skipped.Swap(0)
}
