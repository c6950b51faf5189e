package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/sparsecopy"
)

// ovm3PowerWait is how long sys_shutdown and sys_reboot wait for their
// command before answering that it runs.
const ovm3PowerWait = 30 * time.Second

// ovm3HostMethods are the rest of agent 3's host calls: copy_file inside
// the repositories, the time service as it is, and the host's power
// (sys_shutdown, sys_reboot: only with a command in agent.ini).
func (a *Agent) ovm3HostMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "copy_file", Result: xmlrpc.Nil, Run: a.ovm3CopyFile,
			Params: []xmlrpc.Param{xmlrpc.Req("src", xmlrpc.String), xmlrpc.Req("dst", xmlrpc.String), xmlrpc.Opt("sparse", xmlrpc.Boolean)},
			Help:   "Oracle VM Agent 3: copy the regular file src to dst, a new file; both inside a repository mounted here or a file system the storage plugin mounted at /nfsmnt/<name> (named /OVS/Repositories/<id>/..., /nfsmnt/<name>/... or by their path here). With sparse (the default) holes stay holes."},
		{Name: "get_ntp", Result: xmlrpc.Array, Run: a.ovm3GetNTP,
			Help: "Oracle VM Agent 3: [the time servers the host's time service is configured with, whether it serves time to others, whether it runs], read from [agent] ntp_file (what set_ntp wrote), chrony's, ntpd's or systemd-timesyncd's configuration and the running processes."},
		{Name: "sys_shutdown", Result: xmlrpc.Nil, Run: a.ovm3Power("sys_shutdown", func(c *hostPower) string { return c.shutdown }),
			Help: "Oracle VM Agent 3: power this host off by running [agent] sys_shutdown_command; refused when it is empty (the default)."},
		{Name: "sys_reboot", Result: xmlrpc.Nil, Run: a.ovm3Power("sys_reboot", func(c *hostPower) string { return c.reboot }),
			Help: "Oracle VM Agent 3: reboot this host by running [agent] sys_reboot_command; refused when it is empty (the default)."},
	}
}

func (a *Agent) ovm3CopyFile(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	pm := a.ovm3Paths()
	// Repositories and the storage plugin's secondary mounts, not [agent]
	// file_dirs.
	roots := append(a.repos.MountPoints(), a.secondaryRoots()...)
	srcName, dstName := args.String(0), args.String(1)
	// Named inside a repository, before anything on disk is looked at;
	// fileaccess then checks it there, symlinks resolved.
	for _, n := range []struct{ what, name string }{{"source", srcName}, {"destination", dstName}} {
		if !lexicallyIn(roots, pm.internal(n.name)) {
			return nil, copyFault(n.what, n.name, fileaccess.ErrOutside)
		}
	}
	src, err := fileaccess.OpenRegular(roots, pm.internal(srcName))
	if err != nil {
		return nil, copyFault("source", srcName, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "copy_file: %v", err)
	}
	real, exists, err := fileaccess.CheckRegular(roots, pm.internal(dstName))
	if err != nil {
		return nil, copyFault("destination", dstName, err)
	}
	if exists {
		return nil, xmlrpc.Faultf(xmlrpc.Exists, "copy_file: %s exists already; remove it first or name a new file", dstName)
	}
	dst, err := os.OpenFile(real, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fileFault("copy_file destination", err)
	}
	longCall(ctx) // a large image's copy may take longer than the write timeout
	if !args.Has(2) || args.Bool(2) {
		err = sparsecopy.Copy(ctx, dst, src, fi.Size())
	} else {
		_, err = io.Copy(dst, ctxReader{ctx, src})
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(real)
		if ctx.Err() != nil {
			return nil, xmlrpc.Faultf(xmlrpc.Cancelled, "copy_file %s to %s cancelled; the partial copy is removed", srcName, dstName)
		}
		return nil, fileFault(fmt.Sprintf("copy_file %s to %s (the partial copy is removed):", srcName, dstName), err)
	}
	return nil, nil
}

// copyFault is the fault of a copy_file path that cannot be used.
func copyFault(what, name string, err error) error {
	if errors.Is(err, fileaccess.ErrOutside) {
		return xmlrpc.Faultf(xmlrpc.AccessDenied, "copy_file %s %s is outside the repositories mounted here: copy_file copies only inside repositories (/OVS/Repositories/<id>/...) and the file systems mounted at /nfsmnt/<name>", what, name)
	}
	return fileFault("copy_file "+what, err)
}

// lexicallyIn reports whether the absolute path p names something below
// one of roots, as written.
func lexicallyIn(roots []string, p string) bool {
	if !filepath.IsAbs(p) {
		return false
	}
	p = filepath.Clean(p)
	for _, r := range roots {
		if strings.HasPrefix(p, filepath.Clean(r)+"/") {
			return true
		}
	}
	return false
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// timeServiceFiles are where the host's time service keeps its servers.
var timeServiceFiles = []string{"/etc/chrony/chrony.conf", "/etc/chrony.conf", "/etc/ntp.conf", "/etc/ntpsec/ntp.conf", "/etc/systemd/timesyncd.conf"}

// timeDaemons are the time services' process names.
var timeDaemons = []string{"chronyd", "ntpd", "systemd-timesyn"}

// ovm3GetNTP reads the host's time service: its servers, whether it
// serves others (chrony's or ntpd's allow/restrict lines that let others
// query), whether one of the daemons runs.
func (a *Agent) ovm3GetNTP(context.Context, xmlrpc.Args) (any, error) {
	servers := []string{}
	serves := false
	files := timeServiceFiles
	if f := a.ntpSettings().file; f != "" {
		files = append([]string{f}, files...) // a drop-in wins over the main file
	}
	seen := map[string]bool{}
	for _, p := range files {
		if seen[p] {
			continue
		}
		seen[p] = true
		data, err := os.ReadFile(p)
		if err != nil || len(data) > 1<<20 {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(strings.SplitN(line, "#", 2)[0])
			if len(f) == 0 {
				continue
			}
			switch {
			case (f[0] == "server" || f[0] == "pool" || f[0] == "peer") && len(f) > 1:
				servers = append(servers, f[1])
			case strings.HasPrefix(f[0], "NTP=") || strings.HasPrefix(f[0], "FallbackNTP="):
				_, first, _ := strings.Cut(f[0], "=")
				for _, s := range append([]string{first}, f[1:]...) {
					if s != "" {
						servers = append(servers, s)
					}
				}
			case f[0] == "allow":
				serves = true
			}
		}
	}
	return []any{servers, serves, timeDaemonRunning()}, nil
}

func timeDaemonRunning() bool {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + p.Name() + "/comm")
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, d := range timeDaemons {
			if comm == d {
				return true
			}
		}
	}
	return false
}

// hostPower is the power commands of the configuration in force.
type hostPower struct{ shutdown, reboot string }

// powerMu lets one power command run at a time.
var powerMu sync.Mutex

func (a *Agent) ovm3Power(method string, pick func(*hostPower) string) func(context.Context, xmlrpc.Args) (any, error) {
	return func(ctx context.Context, _ xmlrpc.Args) (any, error) {
		var hp hostPower
		if s := a.state.Load(); s != nil && s.cfg != nil {
			hp = hostPower{s.cfg.Agent.SysShutdownCommand, s.cfg.Agent.SysRebootCommand}
		}
		command := pick(&hp)
		if command == "" {
			return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s is refused: [agent] %s_command is empty in agent.ini (set it, e.g. to /usr/bin/systemctl %s, to let the API do this)", method, method, map[string]string{"sys_shutdown": "poweroff", "sys_reboot": "reboot"}[method])
		}
		if !powerMu.TryLock() {
			return nil, xmlrpc.Faultf(xmlrpc.Busy, "%s: a power command runs already", method)
		}
		defer powerMu.Unlock()
		c := CallerFrom(ctx)
		a.log.Warn("host power command requested over the API", zap.String("method", method), zap.String("command", command), zap.String("user", c.User), zap.String("peer", c.Peer))
		f := strings.Fields(command)
		cmd := exec.Command(f[0], f[1:]...)
		var out limitedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: start %s: %v", method, f[0], err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t := time.NewTimer(ovm3PowerWait)
		defer t.Stop()
		select {
		case err := <-done:
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: %s failed (%v): %s", method, command, ee, strings.TrimSpace(out.String()))
				}
				return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: %s: %v", method, command, err)
			}
			return nil, nil
		case <-t.C:
			// Still running (a shutdown in progress): it is under way.
			return nil, nil
		}
	}
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
