package agent

import (
	"context"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// notify sends sd_notify state lines; outside systemd it does nothing.
func notify(log *zap.Logger, lines ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		log.Warn("sd_notify failed", zap.Error(err))
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants with
// RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1e6 + ts.Nsec/1e3
}

// watchdog pings systemd at half the WATCHDOG_USEC interval, but only
// while the API dispatcher still answers: a wedged agent stops pinging and
// systemd restarts it.
func (a *Agent) watchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		a.log.Warn("watchdog settings unreadable", zap.Error(err))
		return
	}
	if interval <= 0 {
		return
	}
	a.log.Info("watchdog enabled", zap.Duration("interval", interval))
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, interval/4)
			_, err := a.rpc.Call(cctx, "agent.ping", nil)
			cancel()
			if err != nil {
				a.log.Error("self-check failed; not pinging the watchdog", zap.Error(err))
				continue
			}
			notify(a.log, "WATCHDOG=1")
		}
	}
}
