package harness

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where and how a report was made.
type Machine struct {
	Date       time.Time
	GoVersion  string // runtime.Version()
	OS, Arch   string
	GOMAXPROCS int
	NumCPU     int
	CPU        string // model name from /proc/cpuinfo; "" if unknown
	Commit     string // rpcenv's git commit, short; "" if unknown
	Command    string // the command that made the report
}

// ThisMachine describes the running machine and the git commit of the
// working directory's repository. Command is left empty.
func ThisMachine() Machine {
	return Machine{
		Date:       time.Now(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		CPU:        cpuModel(),
		Commit:     gitCommit(),
	}
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// gitCommit returns `git rev-parse --short HEAD`, with "-dirty" when
// tracked files have changes, or "" if git fails.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += "-dirty"
	}
	return commit
}
