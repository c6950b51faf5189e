package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
)

// ntpCommandWait bounds each time service command.
const ntpCommandWait = 30 * time.Second

// ntpMaxServers bounds set_ntp's list.
const ntpMaxServers = 16

// ntpMu lets one time service change run at a time.
var ntpMu sync.Mutex

// ntpConfig is the [agent] ntp_* options in force.
type ntpConfig struct{ file, enable, disable, restart string }

func (a *Agent) ntpSettings() ntpConfig {
	if s := a.state.Load(); s != nil && s.cfg != nil {
		ag := s.cfg.Agent
		return ntpConfig{ag.NTPFile, ag.NTPEnableCommand, ag.NTPDisableCommand, ag.NTPRestartCommand}
	}
	return ntpConfig{}
}

// ovm3NTPMethods: agent 3's set_ntp, enable_ntp and disable_ntp, on the
// file and commands [agent] ntp_* name; each is refused, changing
// nothing, while an option it needs is empty (the default).
func (a *Agent) ovm3NTPMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "set_ntp", Result: xmlrpc.Nil, Run: a.ovm3SetNTP,
			Params: []xmlrpc.Param{{Name: "servers", Type: xmlrpc.Array, Or: []xmlrpc.Type{xmlrpc.String}}, xmlrpc.Opt("running", xmlrpc.Boolean)},
			Help:   "Oracle VM Agent 3: write the time servers (an array of host names or addresses, at most 16; a string is one) into [agent] ntp_file as a systemd-timesyncd drop-in ([Time] NTP=...), then, running true (the default), run ntp_enable_command and ntp_restart_command so that the service runs with them, or, running false, ntp_disable_command. Refused, writing nothing, while an option it needs is empty (the default)."},
		{Name: "enable_ntp", Result: xmlrpc.Nil, Run: a.ovm3NTPCommand("enable_ntp", "ntp_enable_command", func(c ntpConfig) string { return c.enable }),
			Help: "Oracle VM Agent 3: turn the host's time service on by running [agent] ntp_enable_command; refused when it is empty (the default)."},
		{Name: "disable_ntp", Result: xmlrpc.Nil, Run: a.ovm3NTPCommand("disable_ntp", "ntp_disable_command", func(c ntpConfig) string { return c.disable }),
			Help: "Oracle VM Agent 3: turn the host's time service off by running [agent] ntp_disable_command; refused when it is empty (the default)."},
	}
}

func ntpRefused(method, option string) error {
	return xmlrpc.Faultf(xmlrpc.Unsupported, "%s is refused: [agent] %s is empty in agent.ini (the host's time service is changed over the API only when it names it); nothing was changed", method, option)
}

func (a *Agent) ovm3NTPCommand(method, option string, pick func(ntpConfig) string) func(context.Context, xmlrpc.Args) (any, error) {
	return func(ctx context.Context, _ xmlrpc.Args) (any, error) {
		command := pick(a.ntpSettings())
		if command == "" {
			return nil, ntpRefused(method, option)
		}
		ntpMu.Lock()
		defer ntpMu.Unlock()
		if err := a.runNTPCommand(ctx, method, command); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

// ntpServer checks one time server name: a host name or an IP address,
// nothing that could end the NTP= line or add another.
func ntpServer(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("time server %q: want a host name or an address of 1 to 253 characters", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '_') {
			return fmt.Errorf("time server %q: %q is not allowed in a host name or an address", s, c)
		}
	}
	return nil
}

func (a *Agent) ovm3SetNTP(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "set_ntp"
	var servers []string
	switch v := args.All()[0].(type) {
	case string:
		servers = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: the servers must be strings, got %T", method, x)
			}
			servers = append(servers, s)
		}
	}
	if len(servers) > ntpMaxServers {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %d servers: give at most %d", method, len(servers), ntpMaxServers)
	}
	for _, s := range servers {
		if err := ntpServer(s); err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %v", method, err)
		}
	}
	running := true
	if args.Has(1) {
		running = args.Bool(1)
	}
	c := a.ntpSettings()
	switch {
	case c.file == "":
		return nil, ntpRefused(method, "ntp_file")
	case running && c.enable == "":
		return nil, ntpRefused(method+" (running)", "ntp_enable_command")
	case running && c.restart == "":
		return nil, ntpRefused(method+" (running)", "ntp_restart_command")
	case !running && c.disable == "":
		return nil, ntpRefused(method+" (not running)", "ntp_disable_command")
	}
	ntpMu.Lock()
	defer ntpMu.Unlock()
	content := "# Written by ovs-agent (the Oracle VM Agent 3 call set_ntp); the next set_ntp replaces it.\n[Time]\nNTP=" + strings.Join(servers, " ") + "\n"
	if err := os.MkdirAll(filepath.Dir(c.file), 0o755); err != nil {
		return nil, fileFault(method+" "+c.file, err)
	}
	if err := atomicfile.WriteFile(c.file, []byte(content), 0o644); err != nil {
		return nil, fileFault(method+" "+c.file, err)
	}
	caller := CallerFrom(ctx)
	a.log.Info("time servers set over the API", zap.Strings("servers", servers), zap.Bool("running", running), zap.String("file", c.file), zap.String("user", caller.User), zap.String("peer", caller.Peer))
	steps := []string{c.enable, c.restart}
	if !running {
		steps = []string{c.disable}
	}
	for _, command := range steps {
		if err := a.runNTPCommand(ctx, method, command); err != nil {
			var f *xmlrpc.Fault
			if errors.As(err, &f) {
				f.Message = fmt.Sprintf("%s (the servers are written to %s)", f.Message, c.file)
			}
			return nil, err
		}
	}
	return nil, nil
}

// runNTPCommand runs one configured command (no shell) and waits for it.
func (a *Agent) runNTPCommand(ctx context.Context, method, command string) error {
	f := strings.Fields(command)
	cctx, cancel := context.WithTimeout(ctx, ntpCommandWait)
	defer cancel()
	cmd := exec.CommandContext(cctx, f[0], f[1:]...)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	a.log.Info("time service command", zap.String("method", method), zap.String("command", command))
	if err := cmd.Run(); err != nil {
		if cctx.Err() != nil {
			return xmlrpc.Faultf(xmlrpc.Timeout, "%s: %s did not finish within %s", method, command, ntpCommandWait)
		}
		return xmlrpc.Faultf(xmlrpc.Internal, "%s: %s failed (%v): %s", method, command, err, strings.TrimSpace(out.String()))
	}
	return nil
}
