package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The lines that delimit the generated region of a markdown file.
const (
	BeginMarker = "<!-- bench:begin -->"
	EndMarker   = "<!-- bench:end -->"
)

// ReplaceRegion returns doc with the lines between its BeginMarker line
// and the next EndMarker line replaced by region (to which a final
// newline is added if missing). Everything else is kept byte for byte.
// An error names the marker that is missing.
func ReplaceRegion(doc []byte, region string) ([]byte, error) {
	begin := markerLine(doc, BeginMarker, 0)
	if begin < 0 {
		return nil, fmt.Errorf("no line %s", BeginMarker)
	}
	start := lineEnd(doc, begin)
	end := markerLine(doc, EndMarker, start)
	if end < 0 {
		return nil, fmt.Errorf("no line %s after %s", EndMarker, BeginMarker)
	}
	var out bytes.Buffer
	out.Write(doc[:start])
	out.WriteString(region)
	if region != "" && region[len(region)-1] != '\n' {
		out.WriteByte('\n')
	}
	out.Write(doc[end:])
	return out.Bytes(), nil
}

// WriteRegion replaces the generated region of the markdown file at path
// with region (see ReplaceRegion). A file that does not exist is created
// with just the markers and the region; a file without both markers is
// left alone, and the error names it and the missing marker.
func WriteRegion(path, region string) error {
	doc, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		doc = []byte(BeginMarker + "\n" + EndMarker + "\n")
	} else if err != nil {
		return err
	}
	out, err := ReplaceRegion(doc, region)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// markerLine returns the offset of the first line at or after from whose
// text, without surrounding spaces, is marker; -1 if there is none.
func markerLine(doc []byte, marker string, from int) int {
	for i := from; i < len(doc); i = lineEnd(doc, i) {
		line := doc[i:lineEnd(doc, i)]
		if string(bytes.TrimSpace(line)) == marker {
			return i
		}
	}
	return -1
}

// lineEnd returns the offset just past the line starting at i (past its
// newline, or len(doc)).
func lineEnd(doc []byte, i int) int {
	if j := bytes.IndexByte(doc[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(doc)
}
