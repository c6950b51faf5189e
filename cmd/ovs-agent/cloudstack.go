package main

import (
	"fmt"
	"os"

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
refused. It reads the command from SSH_ORIGINAL_COMMAND. In sshd_config:

    Match Address 10.0.0.5
        ForceCommand /usr/sbin/ovs-agent cloudstack-ssh`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := config.Load(cfgPath)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return &exitError{code: 1, msg: "configuration rejected: " + cfgPath}
			}
			if rc := cssetup.Run(os.Getenv("SSH_ORIGINAL_COMMAND"), c, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()); rc != 0 {
				return &exitError{code: rc}
			}
			return nil
		},
	}
	configFlag(cmd, &cfgPath)
	return cmd
}
