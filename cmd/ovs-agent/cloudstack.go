package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent/cssetup"
	"github.com/ovs-agent/ovs-agent/config"
)

func cloudstackSSHCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "cloudstack-ssh",
		Short: "The sshd ForceCommand for Apache CloudStack's host setup (its scp of cloudstack.py and ./cloudstack.py)",
		Long: `The sshd ForceCommand for the management server's ssh login when Apache
CloudStack's OVM3 plugin adds this host. The plugin copies its Python module
cloudstack.py here with scp and runs ./cloudstack.py --ssl=S --port=P to
install it into Oracle VM Agent 3; this agent serves that module's calls
itself, so the copy is received and dropped, and the run checks that
agent.ini's [server] ssl and port are what the plugin connects to (exit 1
saying what to set when they are not). Every other command, and a shell, is
refused. It reads the command from SSH_ORIGINAL_COMMAND, and the
configuration from --config or /etc/ovs-agent/agent.ini (never from the
environment). A ForceCommand governs commands only: turn forwarding and
terminals off for that login too, or it could reach the agent's unix
socket as root. In sshd_config:

    Match Address 10.0.0.5
        ForceCommand /usr/sbin/ovs-agent cloudstack-ssh
        DisableForwarding yes
        PermitTTY no
        PermitTunnel no
        PermitUserRC no`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The whole dialogue is bounded: a client that stops sending
			// does not keep this process.
			t := time.AfterFunc(setupTimeout, func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "ovs-agent: the setup did not end within %s\n", setupTimeout)
				os.Exit(1)
			})
			defer t.Stop()
			c, err := config.Load(cfgPath)
			if err != nil {
				// not the error itself: it may quote the file, and the
				// reader is the ssh client
				return &exitError{code: 1, msg: "configuration rejected: " + cfgPath + " (run ovs-agent check-config on the host)"}
			}
			if rc := cssetup.Run(os.Getenv("SSH_ORIGINAL_COMMAND"), c, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()); rc != 0 {
				return &exitError{code: rc}
			}
			return nil
		},
	}
	// the flag or the default, never OVS_AGENT_CONFIG: sshd may pass the
	// client's environment through
	cmd.Flags().StringVar(&cfgPath, "config", DefaultConfig, "agent configuration file")
	return cmd
}

// setupTimeout bounds one cloudstack-ssh run.
const setupTimeout = 2 * time.Minute
