package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/config"
)

// LSB status exit codes.
const (
	statusRunning    = 0
	statusNotRunning = 3
	statusUnknown    = 4
)

func statusCmd() *cobra.Command {
	var cfgPath string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the agent is running and what it serves (exit 0 running, 3 not running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			c, err := config.Load(cfgPath)
			if err != nil {
				return &exitError{code: statusUnknown, msg: err.Error()}
			}
			if !c.Server.UnixServer || c.Server.UnixSocket == "" {
				return &exitError{code: statusUnknown, msg: "the unix socket is disabled in " + cfgPath + "; status needs it"}
			}
			cl, err := client.New(client.Options{URL: "unix://" + c.Server.UnixSocket, Timeout: 10 * time.Second})
			if err != nil {
				return &exitError{code: statusUnknown, msg: err.Error()}
			}
			defer cl.Close()
			var st struct {
				Version   string    `xmlrpc:"version"`
				PID       int       `xmlrpc:"pid"`
				Started   time.Time `xmlrpc:"started"`
				Uptime    float64   `xmlrpc:"uptime_seconds"`
				Config    string    `xmlrpc:"config"`
				TLS       string    `xmlrpc:"tls_sha256"`
				Password  bool      `xmlrpc:"password_set"`
				Endpoints []struct {
					Kind      string `xmlrpc:"kind"`
					Address   string `xmlrpc:"address"`
					Activated bool   `xmlrpc:"socket_activated"`
				} `xmlrpc:"endpoints"`
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Call(ctx, "agent.status", &st); err != nil {
				if client.IsConn(err) {
					if !quiet {
						fmt.Fprintf(out, "ovs-agent is not running (no answer on %s)\n", cl)
					}
					return &exitError{code: statusNotRunning}
				}
				return &exitError{code: statusUnknown, msg: err.Error()}
			}
			if quiet {
				return nil
			}
			fmt.Fprintf(out, "ovs-agent is running (pid %d, version %s, up %s)\n", st.PID, st.Version, (time.Duration(st.Uptime) * time.Second).String())
			fmt.Fprintf(out, "  config:   %s\n", st.Config)
			for _, e := range st.Endpoints {
				how := ""
				if e.Activated {
					how = " (socket-activated)"
				}
				fmt.Fprintf(out, "  serving:  %s %s%s\n", e.Kind, e.Address, how)
			}
			if st.TLS != "" {
				fmt.Fprintf(out, "  tls:      certificate sha256 %s\n", st.TLS)
			}
			if !st.Password {
				fmt.Fprintln(out, "  warning:  no API password set; TCP clients cannot log in (ovs-agent configure)")
			}
			return nil
		},
	}
	configFlag(cmd, &cfgPath)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing; only the exit code")
	return cmd
}
