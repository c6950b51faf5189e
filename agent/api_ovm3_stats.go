package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
)

// statsIntervalFile keeps set_statistics_interval's interval in the state
// directory, so that a restarted agent samples as it did.
const statsIntervalFile = "statistics-interval.json"

type statsIntervalRecord struct {
	IntervalSeconds int `json:"interval_seconds"`
}

// ovm3StatsMethods: agent 3's statistics interval and time, and the VM
// statistics of CloudStack's agent module.
func (a *Agent) ovm3StatsMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "set_statistics_interval", Result: xmlrpc.Nil, Params: []xmlrpc.Param{xmlrpc.Req("interval", xmlrpc.Int)}, Run: a.ovm3SetStatsInterval,
			Help: fmt.Sprintf("Oracle VM Agent 3: sample this host's CPU use every interval seconds (1 to %d; 0: measure between calls, the default): host.stats' and ovs_dom0_stats' cpu is then the busy percent of the last whole interval, the same for every caller however often it asks; discover_server's Statistic/Interval shows it. Kept in the state directory across restarts. Agent 3 also pushes its samples to the owning manager; this agent pushes nothing (managers poll).", int(hostinfo.MaxPeriod/time.Second))},
		{Name: "get_datetime", Result: xmlrpc.Array, Run: ovm3DateTime,
			Help: "Oracle VM Agent 3: the host's local date and time as [year, month, day, hour, minute, second] ints, the order of agent 3's set_datetime arguments (its zone: get_timezone; seconds since the epoch: get_last_boot_time's local_time)."},
		{Name: "ovs_domU_stats", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.ovm3DomUStats,
			Help: "CloudStack's agent module: a running (or paused) domain's counters since it started, as strings: cputime and uptime (nanoseconds), vcpus, rd_bytes, wr_bytes, rd_ops and wr_ops (its disks, as its engine counts them: 0 for an engine that counts none), rx_bytes and tx_bytes (what the guest received and sent on its interfaces)."},
	}
}

// resumeStatsInterval applies the interval kept in the state directory,
// which it remembers for set_statistics_interval.
func (a *Agent) resumeStatsInterval(stateDir string) error {
	a.statsFile = filepath.Join(stateDir, statsIntervalFile)
	b, err := os.ReadFile(a.statsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var r statsIntervalRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s is not a statistics interval (%v): remove it, or set the interval again with set_statistics_interval", a.statsFile, err)
	}
	if r.IntervalSeconds < 0 || r.IntervalSeconds > int(hostinfo.MaxPeriod/time.Second) {
		return fmt.Errorf("%s: interval %d s is out of range: remove it, or set the interval again with set_statistics_interval", a.statsFile, r.IntervalSeconds)
	}
	return a.sampler.Every(time.Duration(r.IntervalSeconds) * time.Second)
}

func (a *Agent) ovm3SetStatsInterval(_ context.Context, args xmlrpc.Args) (any, error) {
	n := args.Int(0)
	max := int64(hostinfo.MaxPeriod / time.Second)
	if n < 0 || n > max {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "set_statistics_interval %d: give 1 to %d seconds, or 0 to measure between calls (nothing was changed)", n, max)
	}
	if a.statsFile == "" {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "set_statistics_interval: the agent is starting; call again")
	}
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	write := func(secs int) error {
		b, _ := json.Marshal(statsIntervalRecord{IntervalSeconds: secs})
		return atomicfile.WriteFile(a.statsFile, append(b, '\n'), 0o644)
	}
	// kept first: what runs is never other than what the file says
	if err := write(int(n)); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "set_statistics_interval: keep it in the state directory: %v (nothing was changed)", err)
	}
	if err := a.sampler.Every(time.Duration(n) * time.Second); err != nil {
		if werr := write(int(a.sampler.Period() / time.Second)); werr != nil {
			a.log.Error("statistics interval file not restored", zap.Error(werr))
		}
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "set_statistics_interval: %v (nothing was changed)", err)
	}
	a.log.Info("statistics interval set", zap.Int64("seconds", n))
	return nil, nil
}

func ovm3DateTime(context.Context, xmlrpc.Args) (any, error) {
	t := time.Now()
	return []any{t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second()}, nil
}

func (a *Agent) ovm3DomUStats(_ context.Context, args xmlrpc.Args) (any, error) {
	in, err := a.domains.Info(args.String(0))
	if err != nil {
		return nil, domainFault(err)
	}
	if in.State != string(domains.Running) && in.State != string(domains.Paused) {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "ovs_domU_stats: domain %s is %s: only a running or paused domain has counters", in.Name, in.State)
	}
	if !in.Live {
		// zeros would read as counters gone back to a manager that takes
		// differences
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "ovs_domU_stats: the VMM of domain %s did not answer in time; try again", in.Name)
	}
	ns := func(sec float64) string { return strconv.FormatInt(int64(math.Round(sec*1e9)), 10) }
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	return map[string]any{
		"cputime": ns(in.CPUSeconds), "uptime": ns(in.UptimeSeconds), "vcpus": strconv.Itoa(in.VCPUs),
		"rd_bytes": n(in.DiskReadBytes), "wr_bytes": n(in.DiskWriteBytes),
		"rd_ops": n(in.DiskReadOps), "wr_ops": n(in.DiskWriteOps),
		"rx_bytes": n(in.NetRxBytes), "tx_bytes": n(in.NetTxBytes),
	}, nil
}
