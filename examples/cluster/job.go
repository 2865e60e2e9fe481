package main

import "math"

// job is the work: count the primes below Tasks*RangeSize, one task per
// range of RangeSize numbers. Its result is checked against a sieve.
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

// expected counts the primes below j.limit() with a sieve of
// Eratosthenes: the number the job's total must equal.
func (j job) expected() uint64 {
	n := j.limit()
	if n < 3 {
		return 0
	}
	composite := make([]bool, n)
	var count uint64
	for i := uint64(2); i < n; i++ {
		if composite[i] {
			continue
		}
		count++
		for k := i * i; k < n; k += i {
			composite[k] = true
		}
	}
	return count
}
