package harness

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
)

// The chart's geometry, in pixels.
const (
	svgWidth  = 900
	svgLabelX = 130 // right edge of the system names
	svgCol0   = 140 // left edge of the first column of bars
	svgColW   = 380 // width of a column, its values included
	svgBarMax = 230 // the longest bar
	svgRowH   = 20
	svgBarH   = 13
)

// groupColours are the bar colours of each Group.
var groupColours = map[Group]string{
	GroupRPCEnv:  "#2563eb",
	GroupLibrary: "#ea580c",
	GroupFloor:   "#6b7280",
}

// svgPanel is one of the chart's panels: a bar per system and payload.
type svgPanel struct {
	title string
	c     func(payload int) Case
	value func(Result) float64
	tick  func(Result) float64 // a second mark on the bar (p99), or nil
	label func(Result) string
}

// SVG draws r's main figures as a chart of horizontal bars: ask latency
// (p50, with a tick at p99), ask throughput with 32 callers, and one-way
// messages per second, at 64 B and 1 KiB side by side, one bar per
// system that has a figure in any of them (raw-quic, which has only the
// stream case, is left out; so is the stream case). Scales are linear
// and each column has its own.
func SVG(r *Results, m Machine) []byte {
	panels := []svgPanel{
		{
			title: "Ask latency, one caller: p50 (bar) and p99 (tick); shorter is better",
			c:     func(p int) Case { return Case{Latency, p, 1} },
			value: func(x Result) float64 { return float64(x.P50) },
			tick:  func(x Result) float64 { return float64(x.P99) },
			label: func(x Result) string { return fmtDuration(x.P50) + ", p99 " + fmtDuration(x.P99) },
		},
		{
			title: "Ask throughput, 32 callers on one connection: asks per second; longer is better",
			c:     func(p int) Case { return Case{Throughput, p, 32} },
			value: func(x Result) float64 { return x.Rate },
			label: func(x Result) string { return fmtRate(x.Rate) },
		},
		{
			title: "One-way messages from one sender, counted at the receiver; longer is better",
			c:     func(p int) Case { return Case{OneWay, p, 1} },
			value: func(x Result) float64 { return x.Rate },
			label: func(x Result) string { return fmtRate(x.Rate) },
		},
	}
	var sizes []int
	for _, p := range []int{64, 1 << 10} {
		for _, c := range r.Cases {
			if c.Payload == p {
				sizes = append(sizes, p)
				break
			}
		}
	}
	r = withFiguresIn(r, panels, sizes)
	panelH := 44 + len(r.Systems)*svgRowH + 16
	height := 96 + len(panels)*panelH

	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)

	cpu := m.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	svgText(&b, 16, 28, "start", `font-size="18" font-weight="bold"`, "rpcenv beside gRPC-go, net/rpc and the floors")
	svgText(&b, 16, 48, "start", `fill="#374151"`, fmt.Sprintf("%s, %d CPUs, GOMAXPROCS=%d · %s %s/%s · %s · medians of %d rounds · linear scales",
		cpu, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, m.Date.Format("2006-01-02"), r.Rounds))
	x := 16
	for _, g := range []Group{GroupRPCEnv, GroupLibrary, GroupFloor} {
		fmt.Fprintf(&b, `<rect x="%d" y="62" width="12" height="12" fill="%s"/>`+"\n", x, groupColours[g])
		name := g.String()
		svgText(&b, x+17, 72, "start", "", name)
		x += 17 + 7*len(name) + 20
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="60" x2="%d" y2="76" stroke="#111827" stroke-width="2"/>`+"\n", x+4, x+4)
	svgText(&b, x+11, 72, "start", "", "p99")
	x += 11 + 7*3 + 20
	fmt.Fprintf(&b, `<rect x="%d" y="62" width="28" height="12" fill="%s"/>`+"\n", x, groupColours[GroupFloor])
	svgBreak(&b, x+12, 62)
	svgText(&b, x+33, 72, "start", "", "beyond the scale (set by rpcenv and the libraries)")

	y := 96
	for _, p := range panels {
		svgPanelDraw(&b, r, p, sizes, y)
		y += panelH
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// withFiguresIn returns r with only the systems that have a figure in
// one of the panels at one of the sizes, or that were not run there.
func withFiguresIn(r *Results, panels []svgPanel, sizes []int) *Results {
	kept := *r
	kept.Systems = nil
	for _, sys := range r.Systems {
		for _, p := range panels {
			if slices.ContainsFunc(sizes, func(size int) bool {
				x, ok := r.Get(sys.Name(), p.c(size))
				return !ok || !x.NA
			}) {
				kept.Systems = append(kept.Systems, sys)
				break
			}
		}
	}
	return &kept
}

// svgPanelDraw draws panel p with its top at y.
func svgPanelDraw(b *bytes.Buffer, r *Results, p svgPanel, sizes []int, y int) {
	svgText(b, 16, y+14, "start", `font-size="14" font-weight="bold"`, p.title)
	top := y + 40
	for i, sys := range r.Systems {
		svgText(b, svgLabelX, top+i*svgRowH+svgBarH-2, "end", "", sys.Name())
	}
	for col, size := range sizes {
		x0 := svgCol0 + col*svgColW
		svgText(b, x0, y+32, "start", `fill="#374151"`, sizeLabel(size)+" payload")
		scale := svgScale(r, p, size)
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>`+"\n", x0, top-4, x0, top+len(r.Systems)*svgRowH-4)
		for i, sys := range r.Systems {
			by := top + i*svgRowH
			x, ok := r.Get(sys.Name(), p.c(size))
			if !ok || x.NA || scale <= 0 {
				text := "n/a"
				if !ok {
					text = "not run"
				}
				svgText(b, x0+6, by+svgBarH-2, "start", `fill="#6b7280" font-style="italic"`, text)
				continue
			}
			w := max(1, int(p.value(x)/scale*svgBarMax+0.5))
			if w > svgBarMax {
				w = svgBarMax + 16
			}
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x0, by, w, svgBarH, groupColours[sys.Group()])
			if w > svgBarMax {
				svgBreak(b, x0+svgBarMax+4, by)
			}
			end := x0 + w
			if p.tick != nil {
				tx := x0 + int(min(p.tick(x)/scale, 1)*svgBarMax+0.5)
				fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#111827" stroke-width="2"/>`+"\n", tx, by-2, tx, by+svgBarH+2)
				if p.tick(x) > scale { // off the scale: an arrow at the end
					fmt.Fprintf(b, `<path d="M%d %d l5 4 l-5 4 z" fill="#111827"/>`+"\n", tx+2, by+svgBarH/2-4)
				}
				end = max(end, tx+7)
			}
			svgText(b, end+5, by+svgBarH-2, "start", "", p.label(x))
		}
	}
}

// svgScale returns the value that a full-length bar stands for in one
// column of p: the largest value of rpcenv and the other libraries, so
// that they can be compared; a floor beyond it is drawn broken. For
// latency it leaves room for the p99 ticks, unless they are far out.
func svgScale(r *Results, p svgPanel, size int) float64 {
	var scale, ticks float64
	for _, floors := range []bool{false, true} {
		for _, sys := range r.Systems {
			x, ok := r.Get(sys.Name(), p.c(size))
			if !ok || x.NA || (sys.Group() == GroupFloor) != floors {
				continue
			}
			scale = max(scale, p.value(x))
			if p.tick != nil {
				ticks = max(ticks, p.tick(x))
			}
		}
		if scale > 0 {
			break // only floors are there: scale to them
		}
	}
	if p.tick != nil {
		scale = min(max(ticks, scale), 1.6*scale)
	}
	return scale
}

// svgBreak draws the mark of a bar that goes beyond the scale: a white
// slanted gap across the bar whose top left is at x, y.
func svgBreak(b *bytes.Buffer, x, y int) {
	fmt.Fprintf(b, `<path d="M%d %d l4 0 l-4 %d l-4 0 z" fill="#ffffff"/>`+"\n", x+2, y-1, svgBarH+2)
}

// svgText writes a text element; attrs are extra attributes, s is escaped.
func svgText(b *bytes.Buffer, x, y int, anchor, attrs, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="%s" %s>`, x, y, anchor, attrs)
	xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
