package migration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Status is a migration as the API reports it.
type Status struct {
	ID                 string        `xmlrpc:"id"`
	Domain             string        `xmlrpc:"domain"`
	Target             string        `xmlrpc:"target"`
	Live               bool          `xmlrpc:"live"`
	Phase              control.Phase `xmlrpc:"phase"`
	Round              int           `xmlrpc:"round"`
	BytesSent          int64         `xmlrpc:"bytes_sent"`
	BytesRemaining     int64         `xmlrpc:"bytes_remaining"`
	DataPages          int64         `xmlrpc:"data_pages"`
	ZeroPages          int64         `xmlrpc:"zero_pages"`
	SkippedPages       int64         `xmlrpc:"skipped_pages"`
	Throughput         float64       `xmlrpc:"throughput"` // bytes/s
	DirtyRate          float64       `xmlrpc:"dirty_rate"` // bytes/s
	ExpectedDowntimeMs float64       `xmlrpc:"expected_downtime_ms"`
	Throttle           int           `xmlrpc:"throttle_percent"`
	MaxThrottle        int           `xmlrpc:"max_throttle_percent"`
	ThrottledSeconds   float64       `xmlrpc:"throttled_seconds"`
	Started            time.Time     `xmlrpc:"started"`
	ElapsedSeconds     float64       `xmlrpc:"elapsed_seconds"`
	TotalSeconds       float64       `xmlrpc:"total_seconds"`    // from the API call to the end
	TransferSeconds    float64       `xmlrpc:"transfer_seconds"` // the page stream alone, as the VMM timed it
	DowntimeMs         float64       `xmlrpc:"downtime_ms"`
	// The downtime of a live migration in parts: the last pages sent,
	// the target checking the image and building the machine, the commit
	// and the target's start.
	StopCopyMs float64 `xmlrpc:"stop_copy_ms"`
	VerifyMs   float64 `xmlrpc:"verify_ms"`
	ResumeMs   float64 `xmlrpc:"resume_ms"`
	// DrainMs is how long the source waited, the guest still running,
	// for the target to apply what pre-copy sent before pausing it.
	DrainMs float64 `xmlrpc:"drain_ms"`
	// RAMCheckMs is how long a qemu domain's RAM check took (the paused
	// source and the loaded target comparing their RAM, part of the
	// downtime), and MendedPages how many pages it found different and
	// sent again.
	RAMCheckMs  float64 `xmlrpc:"ram_check_ms"`
	MendedPages int     `xmlrpc:"mended_pages"`
	StopReason  string  `xmlrpc:"stop_reason,omitempty"`
	TLSVerified bool    `xmlrpc:"tls_verified"`
	Error       string  `xmlrpc:"error,omitempty"`

	// Offline migrations (a stopped domain and its disks).
	Offline       bool    `xmlrpc:"offline"`
	Percent       float64 `xmlrpc:"percent"`
	ResumedBytes  int64   `xmlrpc:"resumed_bytes"` // already on the target from an interrupted copy
	BytesTotal    int64   `xmlrpc:"bytes_total"`   // data bytes to copy (holes excluded)
	SharedDisks   int     `xmlrpc:"shared_disks"`  // disks the target reaches itself, not copied
	CopiedDisks   int     `xmlrpc:"copied_disks"`  // disks copied
	SourceKeptAs  string  `xmlrpc:"source_kept_as,omitempty"`
	ValidationOff bool    `xmlrpc:"validation_skipped"`

	// Parallel streams and compression of a live or non-live migration.
	Streams           int     `xmlrpc:"streams"`                  // connections the page stream went over
	StreamsReason     string  `xmlrpc:"streams_reason,omitempty"` // why Streams is not what parallel asked (a qemu domain: one)
	Compression       string  `xmlrpc:"compression"`              // none, s2, zstd or auto, as asked
	CompressedBatches int64   `xmlrpc:"compressed_batches"`       // page batches that went compressed
	CompressionSaved  int64   `xmlrpc:"compression_saved_bytes"`  // bytes compression kept off the wire
	CompressionRatio  float64 `xmlrpc:"compression_ratio"`        // page batch bytes on the wire / before compression (1: no gain)
}

func (s Status) finished() bool {
	return s.Phase.Finished()
}

// migration is one migration this agent sends: its status, moved only
// through its role's transition table (control.SourceAgent or
// control.OfflineAgent), and how to cancel it.
type migration struct {
	mu        sync.Mutex
	st        Status
	role      control.Role
	cancel    context.CancelFunc
	cancelled bool
	// handing: a pool domain's ownership is being handed over, or was
	// (follower.mayAbort): too late for the operator to cancel.
	handing bool
	done    chan struct{}
}

// moveLocked moves the phase to to when the role's table allows it; an
// illegal step leaves the phase as it was and says why. m.mu is held.
func (m *migration) moveLocked(to control.Phase) error {
	p, err := m.role.Move(m.st.Phase, to)
	m.st.Phase = p
	return err
}

// set changes the status under the lock.
func (m *migration) set(f func(st *Status)) {
	m.mu.Lock()
	f(&m.st)
	m.mu.Unlock()
}

// move moves the phase (see moveLocked).
func (m *migration) move(to control.Phase) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.moveLocked(to)
}

// end finishes the migration in phase with err (nil keeps the error it
// has): a failure after the operator cancelled is cancelled; a
// cancellation the table refuses (it came after the commit) is a
// failure. It returns the phase the migration ended in.
func (m *migration) end(phase control.Phase, err error) control.Phase {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancelled && phase == control.PhaseFailed {
		phase = control.PhaseCancelled
	}
	if m.moveLocked(phase) != nil && phase == control.PhaseCancelled {
		_ = m.moveLocked(control.PhaseFailed)
	}
	if err != nil {
		m.st.Error = err.Error()
	}
	m.st.TotalSeconds = time.Since(m.st.Started).Seconds()
	return m.st.Phase
}

// isCancelled says whether the operator cancelled the migration.
func (m *migration) isCancelled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cancelled
}

func (m *migration) status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	if !st.finished() {
		st.ElapsedSeconds = time.Since(st.Started).Seconds()
	}
	return st
}

// registry holds the migrations of this agent, finished ones included
// (the newest maxKept).
type registry struct {
	mu   sync.Mutex
	byID map[string]*migration
}

const maxKept = 100

func (l *Local) reg() *registry {
	l.once.Do(func() { l.migs = &registry{byID: make(map[string]*migration)} })
	return l.migs
}

func (r *registry) add(m *migration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) >= maxKept {
		var oldest *migration
		var oldestID string
		for id, x := range r.byID {
			st := x.status()
			if st.finished() && (oldest == nil || st.Started.Before(oldest.status().Started)) {
				oldest, oldestID = x, id
			}
		}
		if oldest != nil {
			delete(r.byID, oldestID)
		}
	}
	r.byID[m.st.ID] = m
}

// ErrNoMigration says an id is unknown.
var ErrNoMigration = errors.New("no such migration")

func (l *Local) find(id string) (*migration, error) {
	r := l.reg()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q (migration.list shows them)", ErrNoMigration, id)
	}
	return m, nil
}

// Status reports one migration.
func (l *Local) Status(id string) (Status, error) {
	m, err := l.find(id)
	if err != nil {
		return Status{}, err
	}
	return m.status(), nil
}

// List reports every migration this agent knows, newest first.
func (l *Local) List() []Status {
	r := l.reg()
	r.mu.Lock()
	out := make([]Status, 0, len(r.byID))
	for _, m := range r.byID {
		out = append(out, m.status())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out
}

// Cancel stops a migration that has not committed: the domain keeps
// running here. It returns the status after the cancel took effect.
func (l *Local) Cancel(id string) (Status, error) {
	m, err := l.find(id)
	if err != nil {
		return Status{}, err
	}
	st := m.status()
	switch st.Phase {
	case control.PhaseCommitting, control.PhaseInDoubt, control.PhaseCompleted:
		return st, fmt.Errorf("migration %s is %s: too late to cancel", id, st.Phase)
	case control.PhaseFailed, control.PhaseCancelled:
		return st, nil
	}
	m.mu.Lock()
	if m.handing {
		m.mu.Unlock()
		return st, fmt.Errorf("migration %s is handing its pool domain's ownership over to the target: too late to cancel", id)
	}
	m.cancelled = true
	m.mu.Unlock()
	m.cancel()
	_, _ = l.Domains.Call(st.Domain, control.Request{Op: control.OpMigrateCancel, Reason: "cancelled by the operator"}, 5*time.Second)
	select {
	case <-m.done:
	case <-l.life().Done():
	case <-time.After(30 * time.Second):
	}
	return m.status(), nil
}

// launch registers a migration with status st in its role's first phase
// and runs body on it in the background, with a context its Cancel ends;
// it returns the migration's id. Start and StartOffline both begin here.
func (l *Local) launch(st Status, role control.Role, body func(ctx context.Context, m *migration)) (string, error) {
	id, err := pagexfer.NewID()
	if err != nil {
		return "", err
	}
	st.ID, st.Phase, st.Started = id.String(), role.First(), time.Now().UTC()
	ctx, cancel := context.WithCancel(context.Background())
	m := &migration{st: st, role: role, cancel: cancel, done: make(chan struct{})}
	l.reg().add(m)
	go func() {
		defer close(m.done)
		defer cancel()
		body(ctx, m)
		if l.Ended != nil {
			l.Ended(m.status())
		}
	}()
	return st.ID, nil
}
