package main

import "math"

// job is the work: count the primes below Tasks*RangeSize, one task per
// range of RangeSize numbers. Its result is checked against a sieve
// (primesBelow).
type job struct {
	Tasks     int
	RangeSize uint64
}

// task returns the range [from, to) of task id.
func (j job) task(id int64) (from, to uint64) {
	from = uint64(id) * j.RangeSize
	return from, from + j.RangeSize
}

// limit is the end of the whole range.
func (j job) limit() uint64 { return uint64(j.Tasks) * j.RangeSize }

// countPrimes counts the primes in [from, to) by trial division: the
// executors' work, deliberately independent of expected's sieve.
func countPrimes(from, to uint64) uint64 {
	var n uint64
	for x := from; x < to; x++ {
		if isPrime(x) {
			n++
		}
	}
	return n
}

func isPrime(x uint64) bool {
	if x < 2 {
		return false
	}
	if x%2 == 0 {
		return x == 2
	}
	r := uint64(math.Sqrt(float64(x)))
	for r*r > x {
		r--
	}
	for (r+1)*(r+1) <= x {
		r++
	}
	for d := uint64(3); d <= r; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}
