package storagehb

import (
	"context"
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
	MinTimeout  = 2 * time.Second
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
	// Fence runs once when a write to mount has not ended after the
	// timeout (again only after a write there has succeeded since).
	Fence func(mount string, stalled time.Duration)
	Log   *zap.Logger
}

// Heartbeat writes the heartbeat files while it runs.
type Heartbeat struct {
	cfg Config

	mu       sync.Mutex
	guid     string
	timeout  time.Duration
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}
	pending  map[string]time.Time // mount -> when its outstanding write began
	fenced   map[string]bool
}

// New is a Heartbeat that does not run yet.
func New(cfg Config) *Heartbeat {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Heartbeat{cfg: cfg, pending: map[string]time.Time{}, fenced: map[string]bool{}}
}

// Ensure makes the heartbeat run for guid with timeout and interval
// (changing them when it runs with others). running reports that it ran
// already; started that this call started it.
func (h *Heartbeat) Ensure(guid string, timeout, interval time.Duration) (running, started bool, err error) {
	if err := CheckGUID(guid); err != nil {
		return false, false, err
	}
	if interval < MinInterval || interval > MaxInterval {
		return false, false, fmt.Errorf("interval %s: want %s to %s", interval, MinInterval, MaxInterval)
	}
	if timeout < MinTimeout || timeout > MaxTimeout || timeout <= interval {
		return false, false, fmt.Errorf("timeout %s: want %s to %s, longer than the interval %s", timeout, MinTimeout, MaxTimeout, interval)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		if h.guid != guid {
			h.cfg.Log.Info("storage heartbeat host guid changed", zap.String("from", h.guid), zap.String("to", guid))
		}
		h.guid, h.timeout, h.interval = guid, timeout, interval
		return true, false, nil
	}
	h.guid, h.timeout, h.interval = guid, timeout, interval
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx, h.done)
	h.cfg.Log.Info("storage heartbeat started", zap.String("guid", guid), zap.Duration("interval", interval), zap.Duration("timeout", timeout))
	return false, true, nil
}

// Running reports whether the heartbeat runs, and for which guid.
func (h *Heartbeat) Running() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.guid, h.cancel != nil
}

// Close stops the heartbeat (a write stuck on dead storage is left to
// end by itself).
func (h *Heartbeat) Close() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.cancel = nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (h *Heartbeat) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		h.beat()
		h.mu.Lock()
		interval := h.interval
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// beat starts a write on every mount that has none outstanding, and
// fences the mounts whose write has outlived the timeout.
func (h *Heartbeat) beat() {
	mounts := h.cfg.Mounts()
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for _, m := range mounts {
		if began, ok := h.pending[m]; ok {
			if stalled := now.Sub(began); stalled > h.timeout && !h.fenced[m] {
				h.fenced[m] = true
				h.cfg.Log.Error("storage heartbeat: a write has not ended: the storage is lost to this host", zap.String("mount", m), zap.Duration("stalled", stalled), zap.Duration("timeout", h.timeout))
				go h.cfg.Fence(m, stalled)
			}
			continue
		}
		h.pending[m] = now
		go h.write(m, filepath.Join(m, FileName(h.guid)), now)
	}
}

func (h *Heartbeat) write(mount, file string, now time.Time) {
	err := writeBeat(file, now)
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, mount)
	if err != nil {
		h.cfg.Log.Warn("storage heartbeat: write failed", zap.String("file", file), zap.Error(err))
		return
	}
	if h.fenced[mount] {
		delete(h.fenced, mount)
		h.cfg.Log.Warn("storage heartbeat: the storage answers again", zap.String("mount", mount))
	}
}

// writeBeat writes now into file: a new file, synced, renamed over it.
func writeBeat(file string, now time.Time) error {
	tmp := file + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%.6f", float64(now.UnixMicro())/1e6)
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

// Age is one heartbeat file's age.
type Age struct {
	Mount string
	Age   time.Duration // the file's age; -1 when it is missing or unreadable
}

// State reads host guid's heartbeat file on each mount: ok when every one
// is younger than timeout (no mounts: ok, as the script answers).
func State(mounts []string, guid string, timeout time.Duration, now time.Time) (bool, []Age, error) {
	if err := CheckGUID(guid); err != nil {
		return false, nil, err
	}
	ok := true
	var ages []Age
	for _, m := range mounts {
		a := Age{Mount: m, Age: -1}
		if b, err := readSmall(filepath.Join(m, FileName(guid))); err == nil {
			if secs, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
				a.Age = now.Sub(time.UnixMicro(int64(secs * 1e6)))
			}
		}
		if a.Age < 0 || a.Age >= timeout {
			ok = false
		}
		ages = append(ages, a)
	}
	return ok, ages, nil
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
