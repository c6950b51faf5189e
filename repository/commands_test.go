package repository

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCtl is a Controller with canned answers.
type fakeCtl struct {
	rep     Report
	st      Status
	err     error
	calls   []string
	lastReq any
}

func (f *fakeCtl) Status(context.Context) (Report, error) {
	f.calls = append(f.calls, "status")
	return f.rep, f.err
}
func (f *fakeCtl) Reload(context.Context) (Report, error) {
	f.calls = append(f.calls, "reload")
	return f.rep, f.err
}
func (f *fakeCtl) Start(context.Context) (Report, error) {
	f.calls = append(f.calls, "start")
	return f.rep, f.err
}
func (f *fakeCtl) Stop(context.Context) (Report, error) {
	f.calls = append(f.calls, "stop")
	return f.rep, f.err
}
func (f *fakeCtl) Make(_ context.Context, r MakeRequest) (Status, error) {
	f.calls, f.lastReq = append(f.calls, "make"), r
	return f.st, f.err
}
func (f *fakeCtl) Add(_ context.Context, source, options string) (Status, error) {
	f.calls, f.lastReq = append(f.calls, "add"), [2]string{source, options}
	return f.st, f.err
}
func (f *fakeCtl) Offline(_ context.Context, r OfflineRequest) (Status, error) {
	f.calls, f.lastReq = append(f.calls, "offline"), r
	return f.st, f.err
}

func TestCommandsExitCodes(t *testing.T) {
	ctx := context.Background()
	mounted := Status{UUID: u1, State: StateMounted, Configured: true, Shared: "1", MountPoint: "/OVS/" + u1, Source: "/dev/sdb1", Size: 10 << 30, Free: 3 << 30, Description: "big"}
	tests := []struct {
		name     string
		ctl      *fakeCtl
		run      func(Commands, *bytes.Buffer, *bytes.Buffer) int
		code     int
		out, err string
	}{
		{"make prints the uuid", &fakeCtl{st: mounted}, func(c Commands, o, e *bytes.Buffer) int { return c.Make(ctx, o, e, "/dev/sdb1", "1", "big", "") }, ExitOK, u1 + "\n", ""},
		{"make fails", &fakeCtl{err: errors.New("make repository: boom")}, func(c Commands, o, e *bytes.Buffer) int { return c.Make(ctx, o, e, "/dev/sdb1", "1", "big", "") }, ExitFailed, "", "ovs-makerepo: make repository: boom\n"},
		{"make created but not mounted", &fakeCtl{st: Status{UUID: u1, State: StateError, Error: "bind: EPERM"}}, func(c Commands, o, e *bytes.Buffer) int { return c.Make(ctx, o, e, "x", "1", "", "") }, ExitFailed, u1 + "\n", "created but error: bind: EPERM"},
		{"offline", &fakeCtl{st: Status{UUID: u1}}, func(c Commands, o, e *bytes.Buffer) int { return c.Offline(ctx, o, e, u1, "/dev/sdb1", false) }, ExitOK, "offline until", ""},
		{"offline -d refused", &fakeCtl{err: errors.New("in use by vm1")}, func(c Commands, o, e *bytes.Buffer) int { return c.Offline(ctx, o, e, u1, "/dev/sdb1", true) }, ExitFailed, "", "ovs-offlinerepo: in use by vm1"},
		{"status all mounted", &fakeCtl{rep: Report{Repositories: []Status{mounted}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Status(ctx, o, e) }, ExitOK, "10.0G", ""},
		{"status with a problem", &fakeCtl{rep: Report{Repositories: []Status{mounted}, Problems: []string{"/etc/ovs/repositories:3: bad"}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Status(ctx, o, e) }, ExitFailed, "/etc/ovs/repositories:3: bad", ""},
		{"status stopped", &fakeCtl{rep: Report{Stopped: true, Repositories: []Status{{UUID: u1, State: StateUnmounted, Configured: true}}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Status(ctx, o, e) }, ExitStopped, "stopped", ""},
		{"status of one unknown", &fakeCtl{rep: Report{Repositories: []Status{mounted}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Status(ctx, o, e, u2) }, ExitFailed, "", "no repository " + u2},
		{"status in use", &fakeCtl{rep: Report{Repositories: []Status{{UUID: u1, State: StateInUse, Error: "removed, but in use", Domains: []string{"vm1"}}}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Status(ctx, o, e) }, ExitFailed, u1 + ": used by vm1", ""},
		{"stop leaves one in use", &fakeCtl{rep: Report{Stopped: true, Repositories: []Status{{UUID: u1, State: StateInUse, Error: "in use"}}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Stop(ctx, o, e) }, ExitFailed, "in use", ""},
		{"stop", &fakeCtl{rep: Report{Stopped: true}}, func(c Commands, o, e *bytes.Buffer) int { return c.Stop(ctx, o, e) }, ExitOK, "stopped", ""},
		{"reload error", &fakeCtl{err: errors.New("read /etc/ovs/repositories: permission denied")}, func(c Commands, o, e *bytes.Buffer) int { return c.Reload(ctx, o, e) }, ExitFailed, "", "repo reload: read /etc/ovs/repositories"},
		{"restart", &fakeCtl{rep: Report{Repositories: []Status{mounted}}}, func(c Commands, o, e *bytes.Buffer) int { return c.Restart(ctx, o, e) }, ExitOK, "mounted", ""},
		{"list", &fakeCtl{rep: Report{Repositories: []Status{mounted}}}, func(c Commands, o, e *bytes.Buffer) int { return c.List(ctx, o, e) }, ExitOK, "/OVS/" + u1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := tt.run(Commands{Ctl: tt.ctl}, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.err) || (tt.err == "" && errOut.Len() > 0) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
		})
	}
	f := &fakeCtl{rep: Report{}}
	Commands{Ctl: f}.Restart(ctx, &bytes.Buffer{}, &bytes.Buffer{})
	if strings.Join(f.calls, ",") != "stop,start" {
		t.Errorf("restart called %v", f.calls)
	}
}

// TestScripts checks that the shell wrappers call `ovs-agent repo ...`
// with their arguments, unchanged, and pass its exit status on.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Abs("../scripts")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "ovs-agent")
	os.WriteFile(fake, []byte("#!/bin/sh\nfor a; do printf '<%s>' \"$a\"; done\necho\nexit ${FAKE_EXIT:-0}\n"), 0o755)
	tests := []struct {
		script string
		args   []string
		exit   string
		want   string
		code   int
	}{
		{"ovs-makerepo", []string{"nfs:/x", "C", "-cluster root-"}, "", "<repo><make><--><nfs:/x><C><-cluster root->", 0},
		{"ovs-makerepo", []string{"/dev/sdb1", "1"}, "", "", 2},
		{"ovs-makerepo", []string{"/dev/sdb1", "1", "x"}, "1", "<repo><make><--></dev/sdb1><1><x>", 1},
		{"ovs-offlinerepo", []string{"-d", u1, "/dev/sdb1"}, "", "<repo><offline><-d><--><" + u1 + "></dev/sdb1>", 0},
		{"ovs-offlinerepo", []string{u1, "/dev/sdb1"}, "", "<repo><offline><--><" + u1 + "></dev/sdb1>", 0},
		{"ovs-offlinerepo", []string{u1}, "", "", 2},
		{"ovs-offlinerepo", []string{"-x", u1, "s"}, "", "", 2},
		{"ovsrepositories", []string{"status"}, "3", "<repo><status>", 3},
		{"ovsrepositories", []string{"reload"}, "", "<repo><reload>", 0},
		{"ovsrepositories", []string{"restart"}, "", "<repo><restart>", 0},
		{"ovsrepositories", []string{"bogus"}, "", "", 2},
		{"ovsrepositories", nil, "", "", 2},
	}
	for _, tt := range tests {
		cmd := exec.Command(filepath.Join(scripts, tt.script), tt.args...)
		cmd.Env = append(os.Environ(), "OVS_AGENT_BIN="+fake, "FAKE_EXIT="+tt.exit)
		out, _ := cmd.Output()
		code := cmd.ProcessState.ExitCode()
		if code != tt.code || (tt.want != "" && !strings.Contains(string(out), tt.want)) {
			t.Errorf("%s %q: exit %d (want %d), output %q (want %q)", tt.script, tt.args, code, tt.code, out, tt.want)
		}
	}
}
