package core_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rpcenv/rpcenv/core"
)

// TestRegisterErrorRefusesMisuse checks every panic of RegisterError, and
// that each names what was wrong.
// errTaken has the code coretest.taken, registered once per process (a
// test may run more than once).
var errTaken = errors.New("taken")

func init() { core.RegisterError("coretest.taken", errTaken) }

func TestRegisterErrorRefusesMisuse(t *testing.T) {
	for _, c := range []struct {
		code string
		err  error
		want string
	}{
		{"coretest.ok", nil, "nil error"},
		{"x.", errors.New("a"), "3 to 64 bytes"},
		{"coretest." + strings.Repeat("x", 60), errors.New("b"), "3 to 64 bytes"},
		{"coretest.Quota", errors.New("c"), "lower-case"},
		{"coretest quota", errors.New("d"), "lower-case"},
		{"quota_exceeded", errors.New("e"), "contains a '.'"},
		{"rpcenv.quota", errors.New("f"), `"rpcenv."`},
		{"coretest.ok", core.ErrInboxFull, `rpcenv's own, with code "inbox_full"`},
		{"coretest.taken", errors.New("g"), "taken by taken"},
		{"coretest.again", errTaken, `already has code "coretest.taken"`},
	} {
		func() {
			defer func() {
				v := recover()
				if v == nil || !strings.Contains(fmt.Sprint(v), c.want) {
					t.Errorf("RegisterError(%q, %v): panic %v, want one saying %q", c.code, c.err, v, c.want)
				}
			}()
			core.RegisterError(c.code, c.err)
		}()
	}
}
