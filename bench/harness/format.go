package harness

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// sig3 formats x with three significant digits and no exponent.
func sig3(x float64) string {
	switch {
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

// fmtDuration formats d with three significant digits: "850 ns",
// "52.1 µs", "1.23 ms".
func fmtDuration(d time.Duration) string {
	ns := float64(d)
	switch {
	case ns < 999.5:
		return strconv.FormatFloat(ns, 'f', 0, 64) + " ns"
	case ns < 999.5e3:
		return sig3(ns/1e3) + " µs"
	case ns < 999.5e6:
		return sig3(ns/1e6) + " ms"
	default:
		return sig3(ns/1e9) + " s"
	}
}

// fmtRate formats a rate per second: "1.52 M/s", "152 k/s", "850 /s".
func fmtRate(r float64) string {
	switch {
	case r >= 999.5e3:
		return sig3(r/1e6) + " M/s"
	case r >= 999.5:
		return sig3(r/1e3) + " k/s"
	default:
		return strconv.FormatFloat(r, 'f', 0, 64) + " /s"
	}
}

// fmtMBps formats a rate in bytes per second as megabytes (10^6 bytes,
// as testing.B's MB/s) per second: "1234 MB/s", "56.7 MB/s".
func fmtMBps(r float64) string { return sig3(r/1e6) + " MB/s" }

// fmtMiB formats a number of bytes in MiB with three significant digits:
// "0.52 MiB", "12.3 MiB", "1024 MiB".
func fmtMiB(bytes float64) string { return sig3(bytes/(1<<20)) + " MiB" }

// fmtRatio formats a ratio with three significant digits: "0.69x",
// "1.10x", "23.4x", "2358x".
func fmtRatio(x float64) string { return sig3(x) + "x" }

// fmtCount formats a per-operation count: one decimal below 10, none
// and thousands separators above: "0.0", "9.1", "64", "1,234".
func fmtCount(x float64) string {
	if x < 10 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	s := strconv.FormatFloat(x, 'f', 0, 64)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtInt formats a count with thousands separators: "7", "1,234".
func fmtInt(n int) string {
	if n < 10 {
		return strconv.Itoa(n)
	}
	return fmtCount(float64(n))
}

// fmtSetting formats a duration that is a setting, not a measurement:
// "2 s", "300 ms", "60 s", "1.5 s".
func fmtSetting(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	case d%time.Millisecond == 0 && d < time.Second:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	default:
		return fmtDuration(d)
	}
}

// sizeLabel names a payload size for headers: "64 B", "1 KiB".
func sizeLabel(n int) string {
	s := SizeName(n)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	return s[:i] + " " + s[i:]
}

// table is a markdown table whose columns are padded, so that it also
// reads as plain text.
type table struct {
	header []string
	right  []bool // right-align column i
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c), 3)
		}
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				fmt.Fprintf(b, " %s%s |", pad, c)
			} else {
				fmt.Fprintf(b, " %s%s |", c, pad)
			}
		}
		b.WriteString("\n")
	}
	line(t.header)
	b.WriteString("|")
	for i, w := range widths {
		if t.right[i] {
			b.WriteString(" " + strings.Repeat("-", w-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", w) + " |")
		}
	}
	b.WriteString("\n")
	for _, row := range t.rows {
		line(row)
	}
}
