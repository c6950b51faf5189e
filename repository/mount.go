package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is wrapped by the error of a mount or unmount that did not
// finish in time. The child process was killed and is no longer waited
// for.
var ErrTimeout = errors.New("timed out")

// mounter runs mount(8) and umount(8) as child processes bounded by a
// timeout, and makes bind mounts with mount(2).
type mounter struct {
	mountCmd, umountCmd string
	timeout             time.Duration
	grace               time.Duration // how long to wait for a killed child
}

// run runs name args in its own process group. At the deadline (the
// mounter's timeout, or ctx's) the group is killed with SIGKILL; if the
// child still has not exited after the grace period (a process stuck in
// the kernel on a dead server) it is abandoned: a goroutine goes on
// waiting for it, and run returns ErrTimeout.
func (m *mounter) run(ctx context.Context, name string, args ...string) error {
	tctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	out := &capBuffer{max: 4096}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	what := name + " " + strings.Join(args, " ")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			if msg := out.text(); msg != "" {
				return fmt.Errorf("%s: %s", what, msg)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-tctx.Done():
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	reason := fmt.Errorf("%w after %v", ErrTimeout, m.timeout)
	if ctx.Err() != nil {
		reason = fmt.Errorf("stopped: %w", ctx.Err())
	}
	select {
	case <-done:
		return fmt.Errorf("%s: %w (killed)", what, reason)
	case <-time.After(m.grace):
		return fmt.Errorf("%s: %w (killed, and abandoned: it did not exit)", what, reason)
	}
}

// mountBacking mounts a source at target with the options as written.
func (m *mounter) mountBacking(ctx context.Context, src Source, options, target string) error {
	var args []string
	switch src.Kind {
	case NFS:
		args = append(args, "-t", "nfs")
	case BlockDevice:
		st, err := os.Stat(src.Path)
		if err != nil {
			return fmt.Errorf("mount %s: %w", src.Raw, err)
		}
		if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("mount %s: not a block device", src.Raw)
		}
	case LocalDir:
		st, err := os.Stat(src.Path)
		if err != nil {
			return fmt.Errorf("mount %s: %w", src.Raw, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("mount %s: not a directory", src.Raw)
		}
		args = append(args, "--bind")
	default:
		return fmt.Errorf("mount %s: unknown kind of source", src.Raw)
	}
	if options != "" {
		args = append(args, "-o", options)
	}
	args = append(args, "--", src.Raw, target)
	return m.run(ctx, m.mountCmd, args...)
}

// remountBacking applies new options to a mounted backing point in
// place. A bind mount (local directory) is remounted with "bind" so that
// only its own flags change, never the file system it comes from. An
// empty option list remounts with "defaults".
func (m *mounter) remountBacking(ctx context.Context, src Source, options, target string) error {
	o := "remount,"
	if src.Kind == LocalDir {
		o += "bind,"
	}
	if options == "" {
		options = "defaults"
	}
	return m.run(ctx, m.mountCmd, "-o", o+options, "--", target)
}

// unmountBacking unmounts a backing point with umount(8).
func (m *mounter) unmountBacking(ctx context.Context, target string) error {
	return m.run(ctx, m.umountCmd, "--", target)
}

// bind makes dst show the mount at src (mount(2), MS_BIND). The new
// mount takes src's mount flags (ro, noatime, ...).
func bind(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	return nil
}

// unbind removes the mount at dst. lazy detaches it even while files are
// open through it (they keep working); otherwise a busy mount stays and
// the error wraps unix.EBUSY.
func unbind(dst string, lazy bool) error {
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	if err := unix.Unmount(dst, flags); err != nil {
		return fmt.Errorf("unmount %s: %w", dst, err)
	}
	return nil
}

// capBuffer keeps the first max bytes written to it; it is safe for the
// concurrent writes of a child's stdout and stderr.
type capBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capBuffer) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(string(c.b))
	// mount(8) adds a hint line about dmesg; keep the first line only.
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}
