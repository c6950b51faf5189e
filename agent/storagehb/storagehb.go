package storagehb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Bounds of the timeout and interval a caller gives.
const (
	MinInterval = time.Second
	MaxInterval = 10 * time.Minute
	MinTimeout  = 3 * time.Second
	MaxTimeout  = time.Hour
)

var guidRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// CheckGUID checks a host guid as the heartbeat file's name part.
func CheckGUID(guid string) error {
	if !guidRE.MatchString(guid) {
		return fmt.Errorf("host guid %.64q: want 1 to 128 letters, digits, '-', '_' and '.', not starting with '.' or '-'", guid)
	}
	return nil
}

// FileName is the heartbeat file of host guid.
func FileName(guid string) string { return ".hb-" + guid }

// Config is what a Heartbeat needs.
type Config struct {
	// Mounts answers the repositories' mount points now.
	Mounts func() []string
	// Fence runs once when the heartbeat of a mount has not been written
	// for the timeout less an interval (so before other hosts read it as
	// stale), whether its write hangs or fails; again only after a write
	// there has succeeded since.
	Fence func(mount string, since time.Duration)
	// SettingsFile, when set, keeps guid, timeout and interval, so that
	// the heartbeat runs again when the agent starts (Resume).
	SettingsFile string
	Log          *zap.Logger
}

// Settings are what the manager asked for.
type Settings struct {
	GUID     string        `json:"guid"`
	Timeout  time.Duration `json:"timeout"`
	Interval time.Duration `json:"interval"`
}

func (s Settings) check() error {
	if err := CheckGUID(s.GUID); err != nil {
		return err
	}
	if s.Interval < MinInterval || s.Interval > MaxInterval {
		return fmt.Errorf("interval %s: want %s to %s", s.Interval, MinInterval, MaxInterval)
	}
	if s.Timeout < MinTimeout || s.Timeout > MaxTimeout || s.Timeout < 3*s.Interval {
		return fmt.Errorf("timeout %s: want %s to %s, at least three intervals (%s)", s.Timeout, MinTimeout, MaxTimeout, 3*s.Interval)
	}
	return nil
}

// mountState is what the heartbeat knows of one mount.
type mountState struct {
	pending bool      // a write is outstanding
	lastOK  time.Time // the time the last successful write wrote (its start)
	failing bool      // the last write failed (logged once)
	fenced  bool
}

// Heartbeat writes the heartbeat files while it runs.
type Heartbeat struct {
	cfg Config

	mu      sync.Mutex
	set     Settings
	cancel  context.CancelFunc
	done    chan struct{}
	closed  bool
	mounts  map[string]*mountState
	fences  sync.WaitGroup
	reading map[string]chan Age // one State read per mount at a time
}

// New is a Heartbeat that does not run yet.
func New(cfg Config) *Heartbeat {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Heartbeat{cfg: cfg, mounts: map[string]*mountState{}, reading: map[string]chan Age{}}
}

// Ensure makes the heartbeat run for guid with timeout and interval
// (changing them when it runs with others). running reports that it ran
// already; started that this call started it.
func (h *Heartbeat) Ensure(guid string, timeout, interval time.Duration) (running, started bool, err error) {
	s := Settings{GUID: guid, Timeout: timeout, Interval: interval}
	if err := s.check(); err != nil {
		return false, false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, false, errors.New("the agent is stopping")
	}
	changed := s != h.set
	if changed && h.cfg.SettingsFile != "" {
		b, _ := json.Marshal(s)
		if err := writeFile(h.cfg.SettingsFile, b); err != nil {
			h.cfg.Log.Warn("storage heartbeat: its settings are not kept across a restart", zap.Error(err))
		}
	}
	if h.cancel != nil {
		if changed {
			h.cfg.Log.Info("storage heartbeat settings changed", zap.String("guid", guid), zap.Duration("interval", interval), zap.Duration("timeout", timeout))
		}
		h.set = s
		return true, false, nil
	}
	h.set = s
	h.startLocked()
	return false, true, nil
}

func (h *Heartbeat) startLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx, h.done)
	h.cfg.Log.Info("storage heartbeat started", zap.String("guid", h.set.GUID), zap.Duration("interval", h.set.Interval), zap.Duration("timeout", h.set.Timeout))
}

// Resume starts the heartbeat with the settings kept by the last Ensure
// (after a restart, before the manager's next ping); no settings kept is
// no heartbeat.
func (h *Heartbeat) Resume() error {
	if h.cfg.SettingsFile == "" {
		return nil
	}
	b, err := os.ReadFile(h.cfg.SettingsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s Settings
	if len(b) > 4096 || json.Unmarshal(b, &s) != nil || s.check() != nil {
		return fmt.Errorf("%s is not a storage heartbeat's settings: remove it (the manager's next ping starts the heartbeat again)", h.cfg.SettingsFile)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil && !h.closed {
		h.set = s
		h.startLocked()
	}
	return nil
}

// Running reports whether the heartbeat runs, and for which guid.
func (h *Heartbeat) Running() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.set.GUID, h.cancel != nil
}

// Close stops the heartbeat and waits for the fences under way (a write
// stuck on dead storage is left to end by itself); no fence starts after.
func (h *Heartbeat) Close() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.cancel, h.closed = nil, true
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	h.fences.Wait()
}

func (h *Heartbeat) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		h.beat(time.Now())
		h.mu.Lock()
		interval := h.set.Interval
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// beat starts a write on every mount that has none outstanding, and
// fences a mount whose heartbeat has not been written for the timeout
// less an interval.
func (h *Heartbeat) beat(now time.Time) {
	mounts := h.cfg.Mounts()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		seen[m] = true
		ms := h.mounts[m]
		if ms == nil {
			ms = &mountState{lastOK: now} // new here: a full timeout from now
			h.mounts[m] = ms
		}
		if since := now.Sub(ms.lastOK); since > h.set.Timeout-h.set.Interval && !ms.fenced {
			ms.fenced = true
			h.cfg.Log.Error("storage heartbeat: not written: the storage is lost to this host", zap.String("mount", m), zap.Duration("since", since), zap.Duration("timeout", h.set.Timeout), zap.Bool("write_outstanding", ms.pending))
			h.fences.Add(1)
			go func() {
				defer h.fences.Done()
				h.cfg.Fence(m, since)
			}()
		}
		if ms.pending {
			continue
		}
		ms.pending = true
		go h.write(m, filepath.Join(m, FileName(h.set.GUID)), now)
	}
	for m, ms := range h.mounts {
		if !seen[m] && !ms.pending { // unmounted: forgotten (a stuck write keeps it)
			delete(h.mounts, m)
		}
	}
}

func (h *Heartbeat) write(mount, file string, now time.Time) {
	err := writeBeat(file, now)
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := h.mounts[mount]
	if ms == nil {
		return
	}
	ms.pending = false
	if err != nil {
		if !ms.failing {
			ms.failing = true
			h.cfg.Log.Warn("storage heartbeat: write failed", zap.String("file", file), zap.Error(err))
		}
		return
	}
	if now.After(ms.lastOK) {
		ms.lastOK = now
	}
	if ms.failing || ms.fenced {
		h.cfg.Log.Warn("storage heartbeat: the storage answers again", zap.String("mount", mount))
	}
	ms.failing, ms.fenced = false, false
}

// writeBeat writes now into file: a new file, synced, then renamed over
// it (as the script does; the folder is not synced).
func writeBeat(file string, now time.Time) error {
	return writeFile(file, []byte(strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64)))
}

func writeFile(file string, b []byte) error {
	tmp := file + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, file)
}

// Age is one mount's heartbeat file of a host.
type Age struct {
	Mount string
	Found bool
	// Age is the file's age (negative: the writer's clock is ahead,
	// which is fresh).
	Age time.Duration
	// Hung: the read did not end within the wait (or one before it has
	// not ended yet).
	Hung bool
}

// State reads host guid's heartbeat file on each mount, waiting at most
// wait for a read: the host is alive when no file found is older than
// timeout and no read hangs (mounts without its file, such as this host's
// local repositories, do not count), or when none of the mounts has its
// file. A read that hangs is not repeated until it ends.
func (h *Heartbeat) State(mounts []string, guid string, timeout, wait time.Duration) (bool, []Age, error) {
	if err := CheckGUID(guid); err != nil {
		return false, nil, err
	}
	now := time.Now()
	deadline := time.After(wait)
	var ages []Age
	chans := map[string]chan Age{}
	for _, m := range mounts {
		h.mu.Lock()
		ch, busy := h.reading[m]
		if !busy {
			ch = make(chan Age, 1)
			h.reading[m] = ch
			go func() {
				a := readAge(m, guid, now)
				h.mu.Lock()
				delete(h.reading, m)
				h.mu.Unlock()
				ch <- a
			}()
		}
		h.mu.Unlock()
		if busy {
			ages = append(ages, Age{Mount: m, Hung: true})
			continue
		}
		chans[m] = ch
	}
	for _, m := range mounts {
		ch, ok := chans[m]
		if !ok {
			continue
		}
		select {
		case a := <-ch:
			ages = append(ages, a)
		case <-deadline:
			ages = append(ages, Age{Mount: m, Hung: true})
		}
	}
	ok := true
	for _, a := range ages {
		if a.Hung || (a.Found && a.Age >= timeout) {
			ok = false
		}
	}
	return ok, ages, nil
}

func readAge(mount, guid string, now time.Time) Age {
	a := Age{Mount: mount}
	b, err := readSmall(filepath.Join(mount, FileName(guid)))
	if err != nil {
		return a
	}
	a.Found = true
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		a.Age = time.Duration(1<<63 - 1) // unreadable: stale
		return a
	}
	a.Age = now.Sub(time.UnixMicro(int64(secs * 1e6)))
	return a
}

func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 64)
	n, err := f.Read(b)
	if n == 0 && err != nil {
		return nil, err
	}
	if n == len(b) {
		return nil, errors.New("heartbeat file too long")
	}
	return b[:n], nil
}
