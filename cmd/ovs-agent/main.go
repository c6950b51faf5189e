// Command ovs-agent is the per-host virtualization agent daemon and its
// service commands:
//
//	ovs-agent serve          run the daemon (systemd Type=notify, or foreground)
//	ovs-agent status         is the daemon up, and what does it serve
//	ovs-agent configure      the Oracle VM Agent configuration dialog
//	ovs-agent check-config   validate agent.ini without starting
//	ovs-agent hash-password  make a password_hash for agent.ini
//	ovs-agent version
//	ovs-agent repo ...       the repository commands ovs-makerepo and friends call
//
// All logic lives in the agent, config and repository packages; these
// files only wire flags to them (and talk to the operator: configure's
// dialog, status's summary, the run directory's first-use message).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent"
	"github.com/ovs-agent/ovs-agent/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// DefaultConfig is where the system agent's configuration lives.
const DefaultConfig = "/etc/ovs-agent/agent.ini"

// exitError carries an exit code; its message has been printed already
// when msg is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:   "ovs-agent",
		Short: "Per-host virtualization agent: XML-RPC API, domains, relocation, repositories",
		Long: `ovs-agent is the per-host virtualization agent. 'ovs-agent serve' is the
daemon, which the systemd unit and the init script run: it serves the XML-RPC
API to manager software and to ovm (HTTPS on port 8899, and the local unix
socket), runs each domain in its own ovs-vmm process, receives migrated
domains on the relocation port (8002), and keeps the storage repositories of
/etc/ovs/repositories mounted under /OVS. The other commands serve the
operator: status, configure, check-config, hash-password, version, and repo
(what ovs-makerepo, ovs-offlinerepo and ovsrepositories call).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.AddCommand(serveCmd(), statusCmd(), configureCmd(), checkConfigCmd(), hashPasswordCmd(), versionCmd(), repoCmd(), cloudstackSSHCmd())
	root.AddCommand(genManCmd(root))
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "ovs-agent:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "ovs-agent:", err)
	return 1
}

func configFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "config", defaultConfig(), "agent configuration file (env OVS_AGENT_CONFIG)")
}

// defaultConfig is OVS_AGENT_CONFIG, else DefaultConfig.
func defaultConfig() string {
	if p := os.Getenv("OVS_AGENT_CONFIG"); p != "" {
		return p
	}
	return DefaultConfig
}

func serveCmd() *cobra.Command {
	var cfgPath, runDir, pidFile string
	var port int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the agent daemon in the foreground (systemd Type=notify service)",
		Long: `Run the agent daemon in the foreground.

Under systemd it reports readiness, reload and stop through sd_notify, pings
the watchdog, and takes sockets named "api" and "unix" from socket
activation. SIGHUP re-reads the configuration (a bad one is rejected and the
running one stays); SIGTERM or SIGINT drains connections and stops.

--run-dir DIR runs a development agent on an embedded default configuration
kept in DIR (created on first use with a generated password): the API on
127.0.0.1, no TLS, state and sockets under DIR. This is what 'make run' does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runDir != "" {
				if cmd.Flags().Changed("config") {
					return &exitError{code: 2, msg: "--config and --run-dir exclude each other"}
				}
				p, err := prepareRunDir(runDir, cmd.OutOrStdout())
				if err != nil {
					return err
				}
				cfgPath = p
			}
			load := func() (*config.Config, error) {
				c, err := config.Load(cfgPath)
				if err != nil {
					return nil, err
				}
				if cmd.Flags().Changed("port") {
					c.Server.Port = port
				}
				return c, nil
			}
			a := agent.New(agent.Options{
				Version:    version,
				ConfigName: cfgPath,
				Load:       load,
				PIDFile:    pidFile,
				Out:        cmd.OutOrStdout(),
			})
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return a.Run(ctx)
		},
	}
	configFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&runDir, "run-dir", "", "run on the embedded default configuration kept in this folder (make run)")
	cmd.Flags().StringVar(&pidFile, "pidfile", "", "write the daemon's pid here (for the SysV init script)")
	cmd.Flags().IntVar(&port, "port", 0, "override [server] port")
	return cmd
}

func checkConfigCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration file and say every problem in it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.Load(cfgPath)
			if err == nil {
				err = agent.CheckConfig(c)
			}
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return &exitError{code: 1, msg: "configuration rejected: " + cfgPath}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "configuration OK: %s\n", cfgPath)
			return nil
		},
	}
	configFlag(cmd, &cfgPath)
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version and protocol",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "ovs-agent %s (protocol %d)\n", version, agent.ProtocolVersion)
		},
	}
}
