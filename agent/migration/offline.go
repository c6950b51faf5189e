package migration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"go.uber.org/zap"
)

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
func (l *Local) CheckOffline(ctx context.Context, name, tgt string, o Options) (Report, error) {
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return Report{}, err
	}
	var c relocation.Checker
	facts := l.askTarget(ctx, &c, tgt, o, func() *relocation.Hello { return l.offlineHello(relocation.OpCheck, "", o, offer, nil) }, false)
	return Report{Problems: relocation.Strings(c.Problems()), Target: facts}, nil
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
	st := Status{Domain: name, Target: addr, Offline: true, TLSVerified: o.SSL && o.Fingerprint != "", ValidationOff: o.Force}
	id, err := l.launch(st, control.OfflineAgent, func(ctx context.Context, m *migration) {
		l.runOffline(ctx, m, offer, addr, o)
	})
	if err != nil {
		l.Domains.EndOffline(name, "offline migration did not start")
	}
	return id, err
}

// runOffline is an offline migration from the sending agent: the target
// validates the offer (the dry run), the disks it does not reach are
// copied, and the commit registers the domain there before this host
// lets go of it.
func (l *Local) runOffline(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) {
	files, err := l.validateOffline(ctx, m, offer, addr, o)
	if err != nil {
		l.endOffline(m, addr, control.PhaseFailed, err)
		return
	}
	conn, err := l.openCopy(ctx, m, offer, addr, o, files)
	if err != nil {
		l.endOffline(m, addr, control.PhaseFailed, err)
		return
	}
	defer conn.Close()
	if phase, err := l.copyDisks(ctx, m, conn, offer, o, files); err != nil {
		l.endOffline(m, addr, phase, err)
		return
	}
	l.commitCopy(m, conn, offer, addr, o, files)
}

// endOffline ends an offline migration; one that did not complete gives
// the domain back to this host, stopped, saying why.
func (l *Local) endOffline(m *migration, addr string, phase control.Phase, err error) {
	phase = m.end(phase, err)
	if phase != control.PhaseCompleted {
		reason := "offline migration to " + addr + " " + string(phase)
		if err != nil {
			reason += ": " + err.Error()
		}
		l.Domains.EndOffline(m.st.Domain, reason)
	}
}

// moveOffline moves an offline migration's phase; the steps are fixed, so
// a refusal is a bug, logged.
func (l *Local) moveOffline(m *migration, to control.Phase) {
	if err := m.move(to); err != nil {
		l.log().Error("offline migration", zap.String("domain", m.st.Domain), zap.Error(err))
	}
}

// validateOffline has the target check the offer (unless forced: then the
// target refuses only what cannot be skipped) and plans the copy: the
// files to send, confined to the repositories and file_dirs here.
func (l *Local) validateOffline(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) ([]relocation.OfflineFile, error) {
	l.moveOffline(m, control.PhaseValidating)
	c, wl, err := l.dial(ctx, addr, o, l.offlineHello(relocation.OpCheck, "", o, offer, nil))
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.Close()
	}
	if len(wl.Problems) > 0 && !o.Force {
		return nil, fmt.Errorf("the target cannot take %s:\n  %s", m.st.Domain, strings.Join(wl.Problems, "\n  "))
	}
	files, shared := copyPlan(offer, wl.Repositories)
	if err := l.confine(files); err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		total += f.Data
	}
	m.set(func(st *Status) {
		st.SharedDisks, st.CopiedDisks, st.BytesTotal, st.BytesRemaining = shared, len(files), total, total
	})
	return files, nil
}

// openCopy dials the connection the copy and the commit go over.
func (l *Local) openCopy(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options, files []relocation.OfflineFile) (net.Conn, error) {
	conn, wl, err := l.dial(ctx, addr, o, l.offlineHello(relocation.OpOffline, m.st.ID, o, offer, files))
	if err != nil {
		return nil, err
	}
	if !wl.OK {
		if len(wl.Problems) > 0 {
			return nil, fmt.Errorf("the target cannot take %s:\n  %s", m.st.Domain, strings.Join(wl.Problems, "\n  "))
		}
		return nil, errors.New("the target refused: " + wl.Error)
	}
	return conn, nil
}

// copyDisks streams the files to the target (none: every disk is on a
// shared repository, and the target waits for the commit at once); on
// failure it returns the phase the migration ends in.
func (l *Local) copyDisks(ctx context.Context, m *migration, conn net.Conn, offer relocation.Offer, o Options, files []relocation.OfflineFile) (control.Phase, error) {
	l.moveOffline(m, control.PhaseCopying)
	src := make([]filexfer.SourceFile, len(files))
	for i, f := range files {
		src[i] = filexfer.SourceFile{Path: f.Path, Name: f.Name}
	}
	progress := func(p filexfer.Progress) { m.set(func(st *Status) { st.copied(p) }) }
	res, err := &filexfer.SendResult{}, error(nil)
	if len(src) > 0 {
		res, err = filexfer.Send(ctx, conn, src, filexfer.SendOptions{
			Migration: m.st.ID, Domain: offer.UUID, RateLimit: o.RateLimit, Progress: progress,
		})
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return control.PhaseCancelled, errors.New("cancelled: the target dropped its partial copy")
		}
		if !errors.Is(err, filexfer.ErrAborted) && !errors.Is(err, filexfer.ErrFormat) {
			err = fmt.Errorf("%w; the target keeps the verified part: run the same migration again to resume", err)
		}
		return control.PhaseFailed, err
	}
	progress(res.Progress)
	l.moveOffline(m, control.PhaseVerified)
	m.set(func(st *Status) {
		st.Percent, st.BytesRemaining = 100, 0
		st.TransferSeconds = res.Elapsed.Seconds()
	})
	return "", nil
}

// copied records the copy's progress; the figures never go back.
func (st *Status) copied(p filexfer.Progress) {
	st.BytesSent = max(st.BytesSent, p.Sent)
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
}

// commitCopy has the target register the domain, then lets go of it
// here; an answer lost in between is settled by asking the target.
func (l *Local) commitCopy(m *migration, conn net.Conn, offer relocation.Offer, addr string, o Options, files []relocation.OfflineFile) {
	m.mu.Lock()
	cancelled := m.cancelled
	if !cancelled {
		_ = m.moveLocked(control.PhaseCommitting)
	}
	m.mu.Unlock()
	if cancelled {
		_ = filexfer.WriteMessage(conn, relocation.OfflineCommit{Reason: "cancelled"})
		l.endOffline(m, addr, control.PhaseCancelled, errors.New("cancelled before the commit: the target dropped its copy"))
		return
	}
	ans, err := l.askCommit(conn, offer, addr, o)
	if err != nil {
		l.endOffline(m, addr, control.PhaseFailed, err)
		return
	}
	if !ans.OK {
		l.endOffline(m, addr, control.PhaseFailed, fmt.Errorf("the target could not register %s: %s", m.st.Domain, ans.Error))
		return
	}
	kept, ferr := l.Domains.FinishOffline(m.st.Domain, movedAway(offer, files), o.Remove)
	m.set(func(st *Status) {
		st.SourceKeptAs = kept
		if ans.Warning != "" {
			st.Error = ans.Warning
		}
		if ferr != nil {
			st.Error = ferr.Error()
		}
	})
	l.endOffline(m, addr, control.PhaseCompleted, nil)
}

// askCommit sends the commit and reads the target's answer; when the
// answer is lost it asks the target whether it has the domain now.
func (l *Local) askCommit(conn net.Conn, offer relocation.Offer, addr string, o Options) (relocation.OfflineCommitted, error) {
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	var ans relocation.OfflineCommitted
	err := filexfer.WriteMessage(conn, relocation.OfflineCommit{Commit: true})
	if err == nil {
		err = filexfer.ReadMessage(conn, &ans)
	}
	if err == nil {
		return ans, nil
	}
	state, qerr := l.targetState(l.life(), addr, o, offer)
	if qerr != nil {
		return ans, fmt.Errorf("the commit's answer was lost (%v) and the target cannot be asked (%v); the domain stays here stopped: check %s before starting it", err, qerr, addr)
	}
	if state == "" {
		return ans, fmt.Errorf("commit: %w; the target does not have the domain", err)
	}
	return relocation.OfflineCommitted{OK: true, State: state}, nil
}

// movedAway lists the source paths of an offline migration's files that
// leave with the domain (kept renamed or removed here): its disks, not an
// operating system's kernel or ramdisk, which other domains may boot too
// (they are copied and stay). files' paths may be resolved (confine).
func movedAway(offer relocation.Offer, files []relocation.OfflineFile) []string {
	boot := map[string]bool{}
	for _, d := range offer.Disks {
		if domains.IsBootFile(d) {
			boot[d.Path] = true
			if real, err := filepath.EvalSymlinks(d.Path); err == nil {
				boot[real] = true
			}
		}
	}
	var out []string
	for _, f := range files {
		if !boot[f.Path] {
			out = append(out, f.Path)
		}
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
