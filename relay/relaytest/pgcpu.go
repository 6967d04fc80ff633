package relaytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresCPU returns the CPU time the PostgreSQL cluster behind pool has
// used so far, all its processes together: the postmaster's own and its
// reaped children's (backends that ended), plus every live child's. It
// reads /proc, so it works only for a cluster on this machine and a user
// allowed to read its processes' stat files. Benchmarks take the
// difference over a run; other work on the cluster meanwhile is counted too.
func PostgresCPU(ctx context.Context, pool *pgxpool.Pool) (time.Duration, error) {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, err
	}
	st, err := procStat(backend)
	if err != nil {
		return 0, err
	}
	postmaster := st.ppid
	pm, err := procStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := pm.self + pm.children
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		s, err := procStat(pid)
		if err != nil || s.ppid != postmaster {
			continue // gone meanwhile, or not the cluster's
		}
		total += s.self
	}
	return total, nil
}

type stat struct {
	ppid           int
	self, children time.Duration
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

func procStat(pid int) (stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The command name (field 2) is parenthesised and may hold spaces.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	return stat{
		ppid:     int(num(1)),                                // field 4
		self:     time.Duration(num(11)+num(12)) * clockTick, // utime, stime (14, 15)
		children: time.Duration(num(13)+num(14)) * clockTick, // cutime, cstime (16, 17)
	}, nil
}
