package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplaceRegionKeepsTheRestByteForByte(t *testing.T) {
	before := "# Benchmarks\r\n\nintro, with trailing spaces   \n  " + BeginMarker + "  \n"
	after := EndMarker + "\n\n## Later\n\nno final newline"
	doc := before + "old line 1\nold line 2\n" + after
	got, err := ReplaceRegion([]byte(doc), "new region\nsecond line")
	if err != nil {
		t.Fatal(err)
	}
	want := before + "new region\nsecond line\n" + after
	if string(got) != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	// Replacing again with the same region changes nothing.
	again, err := ReplaceRegion(got, "new region\nsecond line\n")
	if err != nil || string(again) != want {
		t.Errorf("second replacement: %v\n%q", err, again)
	}
}

func TestReplaceRegionUsesTheFirstEndAfterBegin(t *testing.T) {
	doc := EndMarker + "\n" + BeginMarker + "\nx\n" + EndMarker + "\ny\n" + EndMarker + "\n"
	got, err := ReplaceRegion([]byte(doc), "z\n")
	if err != nil {
		t.Fatal(err)
	}
	want := EndMarker + "\n" + BeginMarker + "\nz\n" + EndMarker + "\ny\n" + EndMarker + "\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriteRegionNamesTheMissingMarkerAndLeavesTheFile(t *testing.T) {
	for _, tc := range []struct {
		name, doc, missing string
	}{
		{"no markers", "# Benchmarks\n\ntext\n", BeginMarker},
		{"only begin", "# Benchmarks\n" + BeginMarker + "\ntext\n", EndMarker},
		{"only end", "# Benchmarks\n" + EndMarker + "\ntext\n", BeginMarker},
		{"end before begin", EndMarker + "\n" + BeginMarker + "\n", EndMarker},
		{"marker inside a line", "see " + BeginMarker + " here\n" + EndMarker + "\n", BeginMarker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteRegion(path, "region\n")
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no line "+tc.missing) {
				t.Errorf("error %v: want one naming %s and %s", err, path, tc.missing)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.doc {
				t.Errorf("the file changed to %q", got)
			}
		})
	}
}

func TestWriteRegionCreatesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := WriteRegion(path, "region\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := BeginMarker + "\nregion\n" + EndMarker + "\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
