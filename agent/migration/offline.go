package migration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// OfflineCommit is the source's last word on an offline migration's
// connection, after the copy was verified.
type OfflineCommit struct {
	Commit bool   `json:"commit"`
	Reason string `json:"reason,omitempty"`
}

// OfflineCommitted is the target's answer: the domain is registered there
// (State: stopped, or running with --start) or Error says why not.
type OfflineCommitted struct {
	OK    bool   `json:"ok"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
	// Warning: registered, but something asked for did not happen (a
	// --start that failed).
	Warning string `json:"warning,omitempty"`
}

// IsOffline reports whether a migration of name would be offline: the
// domain is stopped.
func (l *Local) IsOffline(name string) bool {
	in, err := l.Domains.Info(name)
	return err == nil && in.State == string(domains.Stopped)
}

// offlineHello is the hello of an offline migration or its dry run.
func (l *Local) offlineHello(op, id string, o Options, offer relocation.Offer, files []relocation.OfflineFile) *relocation.Hello {
	h := l.hello(op, id, o, offer)
	h.Live = false
	h.Offline = &relocation.OfflineRequest{Files: files, Repository: o.TargetRepo, Start: o.Start, Force: o.Force}
	return h
}

// CheckOffline is the dry run of an offline migration: every reason it
// would fail, each on its own line, as the target sees them.
func (l *Local) CheckOffline(ctx context.Context, name, tgt string, o Options) ([]string, error) {
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return nil, err
	}
	addr, err := target(tgt, o)
	if err != nil {
		return []string{"target: " + err.Error()}, nil
	}
	c, wl, err := l.dial(ctx, addr, o, l.offlineHello(relocation.OpCheck, "", o, offer, nil))
	if err != nil {
		return []string{"target: " + err.Error()}, nil
	}
	if c != nil {
		c.Close()
	}
	var problems []string
	if wl.Error != "" && len(wl.Problems) == 0 {
		problems = append(problems, "target: "+wl.Error)
	}
	return append(problems, wl.Problems...), nil
}

// copyPlan picks the disks the target does not reach itself and names
// them in the domain's new folder.
func copyPlan(offer relocation.Offer, mounted []string) (files []relocation.OfflineFile, shared int) {
	have := map[string]bool{}
	for _, u := range mounted {
		have[repository.CanonicalUUID(u)] = true
	}
	used := map[string]bool{}
	for _, d := range offer.Disks {
		if d.Repository != "" && have[repository.CanonicalUUID(d.Repository)] {
			shared++
			continue
		}
		if !d.File {
			continue // the target lists it as a problem
		}
		name := filepath.Base(d.Path)
		for i := 2; used[name] || filexfer.ValidateName(name) != nil; i++ {
			name = strconv.Itoa(i) + "-" + sanitize(filepath.Base(d.Path))
		}
		used[name] = true
		files = append(files, relocation.OfflineFile{Path: d.Path, Name: name, Size: d.Size, Data: d.Data})
	}
	return files, shared
}

// sanitize makes a file name acceptable to filexfer.ValidateName.
func sanitize(s string) string {
	s = strings.TrimLeft(s, ".")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\\' || r == '/' {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		s = "disk"
	}
	return s
}

// StartOffline begins the offline migration of a stopped domain and
// returns its id at once.
func (l *Local) StartOffline(name, tgt string, o Options) (string, error) {
	addr, err := target(tgt, o)
	if err != nil {
		return "", err
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return "", err
	}
	if err := l.Domains.BeginOffline(name, addr); err != nil {
		return "", err
	}
	id, err := pagexfer.NewID()
	if err != nil {
		l.Domains.EndOffline(name, "offline migration did not start")
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &migration{cancel: cancel, done: make(chan struct{}), st: Status{
		ID: id.String(), Domain: name, Target: addr, Offline: true, Phase: control.PhaseConnecting, Started: time.Now().UTC(),
		TLSVerified: o.SSL && o.Fingerprint != "", ValidationOff: o.Force,
	}}
	l.reg().add(m)
	go l.runOffline(ctx, m, offer, addr, o)
	return m.st.ID, nil
}

func (l *Local) runOffline(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) {
	defer close(m.done)
	defer m.cancel()
	name, id := m.st.Domain, m.st.ID
	set := func(f func(st *Status)) {
		m.mu.Lock()
		f(&m.st)
		m.mu.Unlock()
	}
	end := func(phase control.Phase, err error) {
		m.mu.Lock()
		if m.cancelled && phase == control.PhaseFailed {
			phase = control.PhaseCancelled
		}
		m.st.Phase = phase
		if err != nil {
			m.st.Error = err.Error()
		}
		m.st.TotalSeconds = time.Since(m.st.Started).Seconds()
		m.mu.Unlock()
		if phase != control.PhaseCompleted {
			reason := "offline migration to " + addr + " " + string(phase)
			if err != nil {
				reason += ": " + err.Error()
			}
			l.Domains.EndOffline(name, reason)
		}
	}

	// 1. Validation on the target (the dry run), unless forced.
	set(func(st *Status) { st.Phase = control.PhaseValidating })
	c, wl, err := l.dial(ctx, addr, o, l.offlineHello(relocation.OpCheck, "", o, offer, nil))
	if err != nil {
		end(control.PhaseFailed, err)
		return
	}
	if c != nil {
		c.Close()
	}
	if len(wl.Problems) > 0 && !o.Force { // forced: the target refuses what cannot be skipped
		end(control.PhaseFailed, fmt.Errorf("the target cannot take %s:\n  %s", name, strings.Join(wl.Problems, "\n  ")))
		return
	}
	files, shared := copyPlan(offer, wl.Repositories)
	if err := l.confine(files); err != nil {
		end(control.PhaseFailed, err)
		return
	}
	var total int64
	for _, f := range files {
		total += f.Data
	}
	set(func(st *Status) {
		st.SharedDisks, st.CopiedDisks, st.BytesTotal, st.BytesRemaining = shared, len(files), total, total
	})

	// 2. The copy.
	conn, wl, err := l.dial(ctx, addr, o, l.offlineHello(relocation.OpOffline, id, o, offer, files))
	if err != nil {
		end(control.PhaseFailed, err)
		return
	}
	if !wl.OK {
		msg := "the target refused: " + wl.Error
		if len(wl.Problems) > 0 {
			msg = fmt.Sprintf("the target cannot take %s:\n  %s", name, strings.Join(wl.Problems, "\n  "))
		}
		end(control.PhaseFailed, errors.New(msg))
		return
	}
	defer conn.Close()
	set(func(st *Status) { st.Phase = control.PhaseCopying })
	src := make([]filexfer.SourceFile, len(files))
	for i, f := range files {
		src[i] = filexfer.SourceFile{Path: f.Path, Name: f.Name}
	}
	progress := func(p filexfer.Progress) {
		set(func(st *Status) {
			if p.Sent > st.BytesSent {
				st.BytesSent = p.Sent
			}
			st.ResumedBytes = p.Resumed
			if rem := p.Total - p.Done; rem < st.BytesRemaining {
				st.BytesRemaining = max(rem, 0)
			}
			if p.Total > 0 {
				if pc := 100 * float64(p.Total-st.BytesRemaining) / float64(p.Total); pc > st.Percent {
					st.Percent = pc
				}
			}
			st.Throughput = p.Rate()
		})
	}
	// Without files to copy (every disk on a shared repository, or none)
	// the target runs no copy and waits for the commit at once.
	res, err := &filexfer.SendResult{}, error(nil)
	if len(src) > 0 {
		res, err = filexfer.Send(ctx, conn, src, filexfer.SendOptions{
			Migration: id, Domain: offer.UUID, RateLimit: o.RateLimit, Progress: progress,
		})
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			end(control.PhaseCancelled, errors.New("cancelled: the target dropped its partial copy"))
			return
		}
		if !errors.Is(err, filexfer.ErrAborted) && !errors.Is(err, filexfer.ErrFormat) {
			err = fmt.Errorf("%w; the target keeps the verified part: run the same migration again to resume", err)
		}
		end(control.PhaseFailed, err)
		return
	}
	progress(res.Progress)
	set(func(st *Status) {
		st.Phase, st.Percent, st.BytesRemaining = control.PhaseVerified, 100, 0
		st.TransferSeconds = res.Elapsed.Seconds()
	})

	// 3. Commit: the target registers the domain, then this host lets go.
	m.mu.Lock()
	cancelled := m.cancelled
	if !cancelled {
		m.st.Phase = control.PhaseCommitting
	}
	m.mu.Unlock()
	if cancelled {
		_ = filexfer.WriteMessage(conn, OfflineCommit{Reason: "cancelled"})
		end(control.PhaseCancelled, errors.New("cancelled before the commit: the target dropped its copy"))
		return
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	var ans OfflineCommitted
	err = filexfer.WriteMessage(conn, OfflineCommit{Commit: true})
	if err == nil {
		err = filexfer.ReadMessage(conn, &ans)
	}
	if err != nil {
		// In doubt: ask the target whether it has the domain now.
		state, qerr := l.targetState(addr, o, offer)
		if qerr != nil {
			end(control.PhaseFailed, fmt.Errorf("the commit's answer was lost (%v) and the target cannot be asked (%v); the domain stays here stopped: check %s before starting it", err, qerr, addr))
			return
		}
		if state == "" {
			end(control.PhaseFailed, fmt.Errorf("commit: %w; the target does not have the domain", err))
			return
		}
		ans = OfflineCommitted{OK: true, State: state}
	}
	if !ans.OK {
		end(control.PhaseFailed, fmt.Errorf("the target could not register %s: %s", name, ans.Error))
		return
	}
	kept, ferr := l.Domains.FinishOffline(name, filePaths(files), o.Remove)
	set(func(st *Status) {
		st.SourceKeptAs = kept
		if ans.Warning != "" {
			st.Error = ans.Warning
		}
		if ferr != nil {
			st.Error = ferr.Error()
		}
	})
	end(control.PhaseCompleted, nil)
}

// targetState asks the target's agent for the domain's state there.
func (l *Local) targetState(addr string, o Options, offer relocation.Offer) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpStatus, "", o, offer))
	if err != nil {
		return "", err
	}
	if c != nil {
		c.Close()
	}
	if !wl.OK {
		return "", errors.New(wl.Error)
	}
	return wl.State, nil
}

// ResolveOfflineInDoubt settles the offline migrations an agent restart
// cut short: a domain the target has is let go of here (the data it had to
// copy kept renamed, disks on repositories it shares left alone); one it
// has not is stopped again. Unreachable targets are asked again for an
// hour.
func (l *Local) ResolveOfflineInDoubt() {
	for name, addr := range l.Domains.OfflineInDoubt() {
		go func(name, addr string) {
			offer, err := l.Domains.Offer(name)
			if err != nil {
				return
			}
			for range 360 {
				if l.settleOffline(name, addr, offer) {
					return
				}
				time.Sleep(10 * time.Second)
			}
		}(name, addr)
	}
}

// settleOffline asks the target about an in-doubt offline migration and
// settles it; false means the target could not be asked.
func (l *Local) settleOffline(name, addr string, offer relocation.Offer) bool {
	state, err := l.targetState(addr, Options{}, offer)
	if err != nil {
		return false
	}
	if state == "" {
		l.Domains.EndOffline(name, "offline migration to "+addr+" was cut short by an agent restart; the target does not have it")
		return true
	}
	// Which disks were copied depends on what the target shares.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, wl, err := l.dial(ctx, addr, Options{}, l.offlineHello(relocation.OpCheck, "", Options{}, offer, nil))
	if c != nil {
		c.Close()
	}
	if err != nil {
		return false
	}
	files, _ := copyPlan(offer, wl.Repositories)
	_, _ = l.Domains.FinishOffline(name, filePaths(files), false)
	return true
}

// filePaths lists the source paths of an offline migration's files.
func filePaths(files []relocation.OfflineFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

// confine checks, where the files are used, that every disk to copy (and
// later keep renamed or remove) resolves inside a repository or [agent]
// file_dirs and is a regular file, and puts the resolved path in its place,
// so that a vm.cfg registered earlier or a symlink swapped since cannot make
// the migration copy or delete a file outside.
func (l *Local) confine(files []relocation.OfflineFile) error {
	var roots []string
	if l.FileRoots != nil {
		roots = l.FileRoots()
	}
	for i, f := range files {
		real, exists, err := fileaccess.CheckRegular(roots, f.Path)
		if err == nil && !exists {
			err = fmt.Errorf("%s: %w", f.Path, fs.ErrNotExist)
		}
		if err != nil {
			return fmt.Errorf("disk %w", err)
		}
		files[i].Path = real
	}
	return nil
}
