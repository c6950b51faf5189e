package qemu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// Migration over a passed file descriptor.
//
// MigrateOut and MigrateIn hand QEMU a descriptor of a connection (or a
// file) with getfd and run QEMU's own migration over it (`migrate
// fd:NAME` on the source, `migrate-incoming fd:NAME` on a target started
// with -incoming defer -S). After QEMU's stream the same connection
// carries bytes of ours (the RAM check, then the two-phase commit), so
// QEMU must neither read them nor cut the connection:
//
//   - QEMU reads ahead (its QEMUFile buffers up to 32 KiB a read), so the
//     target QEMU would swallow anything the source wrote behind the end
//     of its stream. Hence the TARGET speaks first after the image: the
//     source writes nothing more until the target, its image loaded
//     (MigrateIn returned: QEMU said completed, which it says after it
//     closed its copy of the descriptor), has written to it. A source
//     QEMU without the return-path capability (never set here) reads
//     nothing from the connection, and is done with it once it says
//     completed.
//   - QEMU 7.2 does not shutdown(2) the socket at the end of a completed
//     fd migration, on either side: it only closes its own copy (checked
//     by TestMigrationLeavesTheConnection, which exchanges bytes over the
//     same socketpair afterwards). A cancelled migration does shut it down
//     (migrate_cancel calls qemu_file_shutdown, which affects every dup:
//     the caller's copy reads EOF and writes EPIPE): after a cancel the
//     connection is finished anyway.
//   - The source QEMU 7.2 makes the socket blocking (it clears O_NONBLOCK),
//     and the open file description is shared with the caller's copy: a
//     Go net.Conn whose socket QEMU left blocking would ignore its
//     deadlines. passFD restores the flags once QEMU is done with it.

// Defaults of MigrateOptions, and the bounds of what QEMU is asked.
const (
	DefaultPollInterval = 20 * time.Millisecond
	DefaultMaxDowntime  = 300 * time.Millisecond // QEMU's own default
	// NoRateCap is the max-bandwidth set for a migration without a rate
	// cap: QEMU's default is a cap of 32 MiB/s.
	NoRateCap = int64(1) << 40
	// MaxDowntimeLimit is the largest downtime-limit QEMU accepts.
	MaxDowntimeLimit = 2000 * time.Second
	// commandTimeout bounds every QMP command these procedures send: a
	// QEMU that answers nothing for this long is stuck.
	commandTimeout = 30 * time.Second
	// settleTimeout bounds the wait for QEMU to reach its state after a
	// migration ended (postmigrate after completed, cancelled after
	// migrate_cancel).
	settleTimeout = 60 * time.Second
)

// Auto-converge steps, as the workload engines' (pagexfer's
// DefaultThrottleSteps: 20, 40, 60, 80, 99 percent).
const (
	throttleInitial   = 20
	throttleIncrement = 20
	throttleMax       = 99
)

// MigrateOptions tune an outgoing migration.
type MigrateOptions struct {
	// RateLimit caps the stream in bytes per second; 0: no cap.
	RateLimit float64
	// MaxDowntime is QEMU's downtime-limit; 0: DefaultMaxDowntime.
	MaxDowntime time.Duration
	// AutoConverge lets QEMU throttle the vCPUs of a guest that dirties
	// memory faster than the stream sends it.
	AutoConverge bool
	// PollInterval is how often query-migrate is asked; 0:
	// DefaultPollInterval.
	PollInterval time.Duration
}

// Figures are QEMU's own figures of a migration, as query-migrate says
// them, made monotonic: counters that QEMU may report out of order
// between two answers never run backwards here.
type Figures struct {
	Status      string // QEMU's migration status (qmp.Migration*)
	Rounds      int    // dirty-sync-count: the passes over guest RAM
	Transferred uint64 // bytes sent so far
	Remaining   uint64 // bytes QEMU still has to send (0 once completed)
	Total       uint64 // bytes of guest RAM
	DataPages   uint64 // pages sent whole (normal)
	ZeroPages   uint64 // pages sent as zero (duplicate)
	DirtyRate   float64
	Throughput  float64 // bytes per second (QEMU's mbps)
	// ExpectedDowntime while active; Downtime once completed (QEMU's:
	// from the stop to the stream's end).
	ExpectedDowntime, Downtime time.Duration
	TotalTime, SetupTime       time.Duration
	Throttle, MaxThrottle      int // cpu-throttle-percentage, now and highest
}

// migrationInfo is query-migrate with the throttle figure qmp leaves out.
type migrationInfo struct {
	qmp.MigrationInfo
	CPUThrottlePercentage int `json:"cpu-throttle-percentage"`
}

// update folds one answer of query-migrate into f.
func (f Figures) update(m migrationInfo) Figures {
	f.Status = m.Status
	f.TotalTime = max(f.TotalTime, ms(m.TotalTime))
	f.SetupTime = max(f.SetupTime, ms(m.SetupTime))
	f.ExpectedDowntime = ms(m.ExpectedDowntime)
	f.Downtime = max(f.Downtime, ms(m.Downtime))
	f.Throttle = m.CPUThrottlePercentage
	f.MaxThrottle = max(f.MaxThrottle, f.Throttle)
	if r := m.RAM; r != nil {
		f.Rounds = max(f.Rounds, int(r.DirtySyncCount))
		f.Transferred = max(f.Transferred, nonNegative(r.Transferred))
		f.Remaining = nonNegative(r.Remaining)
		f.Total = max(f.Total, nonNegative(r.Total))
		f.DataPages = max(f.DataPages, nonNegative(r.Normal))
		f.ZeroPages = max(f.ZeroPages, nonNegative(r.Duplicate))
		pageSize := r.PageSize
		if pageSize <= 0 {
			pageSize = 4096
		}
		f.DirtyRate = float64(r.DirtyPagesRate) * float64(pageSize)
		f.Throughput = r.Mbps * 1e6 / 8
	}
	if m.Status == qmp.MigrationCompleted {
		f.Remaining, f.ExpectedDowntime = 0, 0
	}
	return f
}

func ms(v int64) time.Duration { return time.Duration(max(v, 0)) * time.Millisecond }

func nonNegative(v int64) uint64 { return uint64(max(v, 0)) }

// Error is a migration that QEMU reports failed, with its own words.
type Error struct {
	Op   string // "migrate", "migrate-incoming"
	Desc string // QEMU's error-desc, "" when it said none
}

func (e *Error) Error() string {
	if e.Desc == "" {
		return "qemu " + e.Op + " failed (QEMU gave no reason; see its log)"
	}
	return "qemu " + e.Op + " failed: " + e.Desc
}

// MigrateOut migrates the guest of the QEMU on c over fd (a connection to
// a target that MigrateIn serves, or a file) and reports QEMU's figures
// to progress (may be nil) every poll. It returns once QEMU says
// completed: the guest is then paused (postmigrate), its whole state in
// the stream, for the caller to hand over or to resume (Resume). Nothing
// more is written to fd, and QEMU reads nothing from it (see the comment
// on migration above: the target speaks first).
//
// On failure, and when ctx ends first (then migrate_cancel, and MigrateOut
// waits until QEMU says cancelled), the guest runs again on this QEMU if
// it ran before: QEMU resumes it itself after a failed or cancelled
// migration, and MigrateOut checks and says cont if it did not.
func MigrateOut(ctx context.Context, c *qmp.Client, fd *os.File, o MigrateOptions, progress func(Figures)) (Figures, error) {
	st, err := status(c)
	if err != nil {
		return Figures{}, fmt.Errorf("migrate: %w", err)
	}
	return migrateOut(ctx, c, fd, o, progress, st.Running)
}

// migrateOut is MigrateOut for a guest that was running before (resume:
// it must run again after a failure) or paused by the caller.
func migrateOut(ctx context.Context, c *qmp.Client, fd *os.File, o MigrateOptions, progress func(Figures), resume bool) (Figures, error) {
	if err := setUp(c, o); err != nil {
		return Figures{}, err
	}
	if progress == nil {
		progress = func(Figures) {}
	}
	const name = "ovs-migrate-out"
	restore, err := passFD(c, name, fd)
	if err != nil {
		return Figures{}, fmt.Errorf("migrate: hand QEMU the stream: %w", err)
	}
	defer restore()
	if err := command(c, func(ctx context.Context) error { return c.Migrate(ctx, "fd:"+name) }); err != nil {
		closeFD(c, name)
		return Figures{}, err
	}
	f, err := follow(ctx, c, o.interval(), progress)
	if err != nil {
		if rerr := ensureRunning(c, resume); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return f, err
	}
	// QEMU 7.2 says completed a moment before it sets postmigrate.
	settle(c, qmp.StatusPostMigrate)
	return f, nil
}

func (o MigrateOptions) interval() time.Duration {
	if o.PollInterval > 0 {
		return o.PollInterval
	}
	return DefaultPollInterval
}

// setUp sets the capabilities and parameters of a migration: all of them,
// every time, so that nothing of an earlier migration lingers.
func setUp(c *qmp.Client, o MigrateOptions) error {
	downtime := o.MaxDowntime
	if downtime == 0 {
		downtime = DefaultMaxDowntime
	}
	if downtime < 0 || downtime > MaxDowntimeLimit {
		return fmt.Errorf("migrate: max downtime %v is out of QEMU's range (1 ms to %v)", downtime, MaxDowntimeLimit)
	}
	rate := NoRateCap
	if o.RateLimit > 0 {
		if o.RateLimit >= math.MaxInt64 {
			return fmt.Errorf("migrate: rate limit %g bytes/s is out of range", o.RateLimit)
		}
		rate = max(int64(o.RateLimit), 1)
	}
	dl := max(downtime.Milliseconds(), 1)
	p := qmp.MigrationParameters{MaxBandwidth: &rate, DowntimeLimit: &dl}
	if o.AutoConverge {
		initial, inc, top := int64(throttleInitial), int64(throttleIncrement), int64(throttleMax)
		p.CPUThrottleInitial, p.CPUThrottleIncrement, p.MaxCPUThrottle = &initial, &inc, &top
	}
	caps := map[string]bool{"events": true, "auto-converge": o.AutoConverge}
	if err := command(c, func(ctx context.Context) error { return c.MigrateSetCapabilities(ctx, caps) }); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := command(c, func(ctx context.Context) error { return c.MigrateSetParameters(ctx, p) }); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// follow polls query-migrate until the migration ends, reporting each
// answer; ctx ending cancels it.
func follow(ctx context.Context, c *qmp.Client, interval time.Duration, progress func(Figures)) (Figures, error) {
	var f Figures
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m, err := queryMigrate(c)
		if err != nil {
			return f, fmt.Errorf("migrate: %w", err)
		}
		f = f.update(m)
		switch m.Status {
		case qmp.MigrationCompleted:
			if m.TotalTime > 0 { // 7.2 says completed with total-time 0 for a moment
				progress(f)
				return f, nil
			}
		case qmp.MigrationFailed:
			return f, &Error{Op: "migrate", Desc: m.ErrorDesc}
		case qmp.MigrationCancelled:
			return f, errors.New("migrate: cancelled in QEMU (by someone else: this VMM did not ask)")
		default:
			progress(f)
		}
		select {
		case <-ctx.Done():
			return cancel(c, f, ctx.Err())
		case <-t.C:
		}
	}
}

// cancel says migrate_cancel and waits until QEMU says the migration
// ended; why is the reason, returned wrapped.
func cancel(c *qmp.Client, f Figures, why error) (Figures, error) {
	if err := command(c, c.MigrateCancel); err != nil {
		return f, errors.Join(fmt.Errorf("migrate: %w", why), fmt.Errorf("migrate_cancel: %w", err))
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		m, err := queryMigrate(c)
		if err != nil {
			return f, errors.Join(fmt.Errorf("migrate: %w", why), err)
		}
		f = f.update(m)
		switch m.Status {
		case qmp.MigrationCancelled, qmp.MigrationFailed, qmp.MigrationCompleted:
			// Completed: it finished before the cancel took; the caller
			// resumes the guest all the same.
			return f, fmt.Errorf("migrate: cancelled (QEMU says %s): %w", m.Status, why)
		}
		if time.Now().After(deadline) {
			return f, fmt.Errorf("migrate: QEMU still says %s %v after migrate_cancel: %w", m.Status, settleTimeout, why)
		}
		time.Sleep(DefaultPollInterval)
	}
}

// ensureRunning resumes the guest after a migration that did not
// complete, when it ran before (want) and QEMU did not resume it.
func ensureRunning(c *qmp.Client, want bool) error {
	if !want {
		return nil
	}
	st, err := status(c)
	if err != nil {
		return fmt.Errorf("resume the guest after the failed migration: %w", err)
	}
	if st.Running {
		return nil
	}
	if err := command(c, c.Cont); err != nil {
		return fmt.Errorf("resume the guest after the failed migration (QEMU says %s): %w", st.Status, err)
	}
	return nil
}

// Resume gives the guest back to this QEMU after a migration that
// completed but was not committed (postmigrate: QEMU reactivates its
// disks on cont) or after a save.
func Resume(c *qmp.Client) error {
	if err := command(c, c.Cont); err != nil {
		return fmt.Errorf("resume the guest: %w", err)
	}
	return nil
}

// MigrateIn loads the incoming migration QEMU on c (started with
// -incoming defer -S) reads from fd, and returns once it has: the guest
// is then loaded and paused, QEMU's copy of fd closed, and the caller
// may use fd for what follows QEMU's stream (it speaks first there: see
// the comment on migration above). ctx bounds the load. QEMU 7.2 exits
// when a load fails (its reason goes to its stderr); the error then says
// so, and carries error-desc when QEMU said one first.
func MigrateIn(ctx context.Context, c *qmp.Client, fd *os.File) error {
	const name = "ovs-migrate-in"
	restore, err := passFD(c, name, fd)
	if err != nil {
		return fmt.Errorf("migrate-incoming: hand QEMU the stream: %w", err)
	}
	defer restore()
	if err := command(c, func(ctx context.Context) error { return c.MigrateIncoming(ctx, "fd:"+name) }); err != nil {
		closeFD(c, name)
		return err
	}
	t := time.NewTicker(DefaultPollInterval)
	defer t.Stop()
	for {
		m, err := queryMigrate(c)
		switch {
		case errors.Is(err, qmp.ErrDisconnected):
			return fmt.Errorf("migrate-incoming: QEMU ended while loading the stream (it exits on a failed load; its log says why): %w", err)
		case err != nil:
			return fmt.Errorf("migrate-incoming: %w", err)
		case m.Status == qmp.MigrationFailed:
			return &Error{Op: "migrate-incoming", Desc: m.ErrorDesc}
		case m.Status == qmp.MigrationCompleted:
			return loaded(c)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate-incoming: the stream was not loaded (QEMU says %q): %w", m.Status, ctx.Err())
		case <-t.C:
		}
	}
}

// loaded checks that a target that said completed holds the guest
// paused, as -S leaves it.
func loaded(c *qmp.Client) error {
	st, err := status(c)
	if err != nil {
		return fmt.Errorf("migrate-incoming: %w", err)
	}
	if st.Running || st.Status != qmp.StatusPaused {
		return fmt.Errorf("migrate-incoming: loaded, but QEMU says %s (want paused: was it started with -S?)", st.Status)
	}
	return nil
}

// settle waits (bounded) until QEMU's run state is want; it is only a
// courtesy to what follows, so it gives up quietly.
func settle(c *qmp.Client, want string) {
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		st, err := status(c)
		if err != nil || st.Status == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// command runs one QMP command under commandTimeout.
func command(c *qmp.Client, run func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return run(ctx)
}

func status(c *qmp.Client) (st qmp.Status, err error) {
	err = command(c, func(ctx context.Context) (err error) {
		st, err = c.QueryStatus(ctx)
		return err
	})
	return st, err
}

func queryMigrate(c *qmp.Client) (m migrationInfo, err error) {
	err = command(c, func(ctx context.Context) error { return c.Execute(ctx, "query-migrate", nil, &m) })
	return m, err
}

func closeFD(c *qmp.Client, name string) {
	_ = command(c, func(ctx context.Context) error { return c.CloseFD(ctx, name) })
}
