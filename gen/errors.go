package gen

import (
	"cmp"
	"fmt"
	"go/token"
	"slices"
	"strconv"
	"strings"
)

// Error is one mistake in the input package, at a position in its source.
type Error struct {
	Pos token.Position // Filename is as the loader saw it (absolute); Line 0 when only the file or directory is known
	Msg string
}

// Error returns "file:line:col: message", as the Go compiler prints errors.
func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every mistake Generate found, sorted by position. It is
// the error Generate returns when the input is wrong; use errors.As to
// get it.
type ErrorList []Error

// Error returns the errors one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errs collects errors while the package is checked.
type errs struct {
	fset *token.FileSet
	list ErrorList
}

func (e *errs) add(pos token.Pos, format string, args ...any) {
	e.list = append(e.list, Error{Pos: e.fset.Position(pos), Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the errors in source order, or nil if there are none.
func (e *errs) sorted() error {
	if len(e.list) == 0 {
		return nil
	}
	slices.SortStableFunc(e.list, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Filename, b.Pos.Filename), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	return e.list
}

// parsePos reads the "file:line:col" (or "file:line", or "file") position
// of a go/packages error.
func parsePos(s string) token.Position {
	var p token.Position
	for _, dst := range []*int{&p.Column, &p.Line} {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(s[i+1:])
		if err != nil {
			break
		}
		*dst, s = n, s[:i]
	}
	if p.Line == 0 && p.Column != 0 { // "file:line": the one number read is the line
		p.Line, p.Column = p.Column, 0
	}
	p.Filename = s
	return p
}
