package domains

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Incoming registers a domain arriving from another host and starts its
// VMM waiting for the page stream. The domain stays starting until the
// migration commits (then running) or fails (then it is removed). A pool
// domain arrives with a lease (runUntil, generation; see SetLease): its
// VMM starts with it, so that it never runs the guest without one; zeros
// for any other.
func (m *Manager) Incoming(config, from string, runUntil control.Monotonic, generation int64) error {
	cfg, err := vmcfg.Parse("vm.cfg", []byte(config))
	if err != nil {
		return &Error{Kind: Invalid, Msg: err.Error()}
	}
	if cfg.UUID == "" {
		return errorf(Invalid, "incoming domain %s has no UUID", cfg.Name)
	}
	if _, _, err := m.Create([]byte(config), "migration from "+from); err != nil {
		return err
	}
	d, err := m.get(cfg.Name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if runUntil != 0 || generation != 0 {
		if generation < 0 {
			m.forget(d)
			return errorf(Invalid, "incoming domain %s: generation %d is negative", cfg.Name, generation)
		}
		d.leaseMu.Lock()
		d.mu.Lock()
		m.takeLease(d, runUntil, generation)
		d.mu.Unlock()
		d.leaseMu.Unlock()
	}
	if err := m.launch(d, vmmproc.Incoming, "", from, nil); err != nil {
		m.forget(d)
		return err
	}
	return nil
}

// Call makes a control call to a domain's VMM, passing files along.
func (m *Manager) Call(name string, req control.Request, timeout time.Duration, files ...*os.File) (*control.Response, error) {
	d, err := m.get(name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	v := d.vmm
	d.mu.Unlock()
	if v == nil {
		return nil, errorf(BadState, "domain %s has no running VMM", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return v.Call(ctx, req, files...)
}

// WatchIncoming follows an incoming migration's VMM until the guest runs
// (the domain becomes running) or the VMM ends (vmmGone removes the
// domain). It returns the final state.
func (m *Manager) WatchIncoming(name string) State {
	for {
		d, err := m.get(name)
		if err != nil {
			return Stopped
		}
		d.mu.Lock()
		st, exited, v := d.rec.State, d.exited, d.vmm
		d.mu.Unlock()
		if st != Starting {
			return st
		}
		if v != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := v.Call(ctx, control.Request{Op: control.OpMigrateStatus})
			cancel()
			if err == nil && resp.Migration != nil && resp.Migration.Phase == control.PhaseRunning {
				d.mu.Lock()
				if d.rec.State == Starting {
					d.rec.Incoming = false
					m.setState(d, Running, "migrated from "+d.rec.IncomingFrom)
				}
				d.mu.Unlock()
				return Running
			}
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Millisecond):
		case <-m.closed:
			return Starting
		}
	}
}

// Save writes a save image of a running or paused domain to path; the
// domain is suspended afterwards (start restores it).
func (m *Manager) Save(name, path string) error {
	if !filepath.IsAbs(path) {
		return errorf(Invalid, "save image %q: give an absolute path on the agent's host", path)
	}
	var exited chan struct{}
	d, done, err := m.begin(name, "save", func(d *domain) { exited = d.exited })
	if err != nil {
		return err
	}
	defer done()
	cfgText, err := os.ReadFile(filepath.Join(d.dir, "vm.cfg"))
	if err != nil {
		return errorf(Failed, "save %s: %v", name, err)
	}
	ended := func() error {
		d.mu.Lock()
		st, reason := d.rec.State, d.rec.Reason
		d.mu.Unlock()
		if st != Suspended {
			return errorf(Failed, "save %s: the VMM ended: %s", name, reason)
		}
		return nil
	}
	resp, err := m.ctlCall(d, control.Request{Op: control.OpSave, Path: path, Config: string(cfgText)}, 10*time.Second)
	if err != nil {
		// A small guest's save can be done, and its VMM gone, before the
		// answer to the call was read: its exit record says what became
		// of it.
		select {
		case <-exited:
			return ended()
		case <-time.After(2 * time.Second):
		}
		return errorf(Failed, "save %s: %v", name, err)
	}
	id := resp.Migration.ID
	began := time.Now()
	defer func() {
		d.mu.Lock()
		d.saving = nil
		d.mu.Unlock()
	}()
	for {
		select {
		case <-exited:
			return ended()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := m.ctlCall(d, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err == nil && resp.Migration != nil {
			st := resp.Migration
			if st.Phase == control.PhaseFailed {
				return errorf(Failed, "save %s %s: %s", name, id, st.Error)
			}
			d.mu.Lock()
			d.saving = &SaveProgress{Image: path, Phase: string(st.Phase), BytesSent: int64(st.BytesSent), BytesRemaining: int64(st.BytesRemaining),
				Throughput: st.Throughput, Seconds: time.Since(began).Seconds()}
			d.mu.Unlock()
		}
	}
}

// ImageDomain names the domain a save image at path holds (its name and
// uuid, from the vm.cfg in its header), reading nothing else of it.
func (m *Manager) ImageDomain(path string) (name, uuid string, err error) {
	f, _, cfg, err := openImage(path)
	if err != nil {
		return "", "", err
	}
	f.Close()
	return cfg.Name, cfg.UUID, nil
}

// openImage opens the save image at path as it is (no symlink swapped in
// since the API resolved it, never blocking on a FIFO put there since)
// and reads its header and the vm.cfg in it. The caller closes f.
func openImage(path string) (*os.File, imageHeader, *vmcfg.Config, error) {
	f, err := boundedfile.Open(path, boundedfile.NoFollow)
	if errors.Is(err, fileaccess.ErrNotRegular) {
		return nil, imageHeader{}, nil, fmt.Errorf("save image %w", err)
	}
	if err != nil {
		return nil, imageHeader{}, nil, errorf(NotFound, "save image: %v", err)
	}
	img, err := readImageHeader(f, path)
	if err != nil {
		f.Close()
		return nil, imageHeader{}, nil, err
	}
	cfg, err := vmcfg.Parse(filepath.Base(path)+" (configuration)", []byte(img.config))
	if err != nil {
		f.Close()
		return nil, imageHeader{}, nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	return f, img, cfg, nil
}

// Restore starts a domain from a save image: the image's own domain
// configuration registers it if this host does not know it yet.
func (m *Manager) Restore(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", errorf(Invalid, "save image %q: give an absolute path on the agent's host", path)
	}
	f, img, cfg, err := openImage(path)
	if err != nil {
		return "", err
	}
	defer f.Close() // the VMM gets it as an inherited descriptor
	if err := m.checkImage(cfg, img, path); err != nil {
		return "", err
	}
	d, err := m.get(cfg.Name)
	if err != nil {
		if _, _, err := m.Create([]byte(img.config), "restore of "+path); err != nil {
			return "", err
		}
		if d, err = m.get(cfg.Name); err != nil {
			return "", err
		}
	} else if !strings.EqualFold(d.rec.UUID, cfg.UUID) {
		return "", errorf(Exists, "domain %s here has UUID %s; the image holds %s", cfg.Name, d.rec.UUID, cfg.UUID)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := m.launch(d, vmmproc.Restore, path, "", f); err != nil {
		return "", err
	}
	m.log.Info("domain restored", zap.String("domain", cfg.Name), zap.String("image", path))
	return cfg.Name, nil
}

// Migrating marks the start of an outgoing migration (for the log and the
// reason shown) and checks the domain may move.
func (m *Manager) Migrating(name, target string) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := check(name, "migrate", d.rec.State); err != nil {
		return err
	}
	m.log.Info("migration started", zap.String("domain", name), zap.String("target", target))
	return nil
}
