package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserPath returns a Chromium or Chrome to drive, or skips the test.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no browser found (chromium, chromium-browser or google-chrome on PATH): install one, e.g. apt-get install chromium, to run the status page's browser test")
	return ""
}

// A headless browser loads the status page during a run: the page shows
// the four executors, and its progress figure rises as the test lets
// tasks run. With RPCENV_SCREENSHOT set to a path, the test writes a
// screenshot of the page there (PNG).
func TestBrowserShowsTheExecutorsAndTheProgressRising(t *testing.T) {
	browser := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run its sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The browser starts before the job: the tasks then wait at the gate
	// for the test's steps only, not for the browser, and the page's
	// round-trip chart shows that.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	const tasks = 40
	j := startPacedJob(t, tasks)

	if err := chromedp.Do(bctx, chromedp.Navigate(j.url)); err != nil {
		t.Fatalf("load %s: %v", j.url, err)
	}
	// The page polls /api/status: wait until it has drawn the executors
	// (all four registered before the page was loaded).
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.querySelectorAll("#executors tbody tr").length === 4`)); err != nil {
		t.Fatalf("the page never showed 4 executors: %v", err)
	}
	ids, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#executors tbody tr")].map(r => r.dataset.executor + " " + r.querySelector(".state").textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"exec-1 running", "exec-2 running", "exec-3 running", "exec-4 running"} {
		if i >= len(ids) || ids[i] != want {
			t.Errorf("executor rows %q, want %s in row %d", ids, want, i+1)
		}
	}
	done := `Number(document.getElementById("done").textContent)`
	first, err := chromedp.Run(bctx, chromedp.Evaluate[int](done))
	if err != nil {
		t.Fatal(err)
	}

	// Nothing ran before; now 16 tasks do, and the driver counts them
	// before let returns. The page shows it at its next refresh.
	j.let(t, 16)
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](done+` >= 16`)); err != nil {
		t.Fatalf("the page's progress never reached 16: %v", err)
	}
	second, err := chromedp.Run(bctx, chromedp.Evaluate[int](done))
	if err != nil {
		t.Fatal(err)
	}
	if first != 0 || second != 16 {
		t.Errorf("progress read %d, then %d; want 0, then 16", first, second)
	}
	total, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("total").textContent`))
	if err != nil || total != "40" {
		t.Errorf("total tasks shown: %q, %v; want 40", total, err)
	}
	// The same refresh drew the round trips of the tasks counted.
	if n, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart circle").length`)); err != nil || n == 0 {
		t.Errorf("the round-trip chart has %d points (%v), want some", n, err)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	if path := os.Getenv("RPCENV_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}

	cancelBrowser() // before the job ends: the page would only show the server gone
	j.finish(t)
}
