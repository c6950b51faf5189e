package main

import (
	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// genManCmd is the hidden `ovs-agent gen-man DIR` that make deb runs: the
// manual pages of every command (section 8: ovs-agent.8,
// ovs-agent-serve.8, ...) with the exit status, files and environment
// below, and agent.ini(5), the configuration reference rendered from the
// embedded agent.ini.example. Bash and zsh completion come from cobra's
// own `ovs-agent completion`.
func genManCmd(root *cobra.Command) *cobra.Command {
	return manpage.GenCommand("Write the manual pages ovs-agent*.8 and agent.ini.5 into DIR", func(dir string) ([]string, error) {
		names, err := manTree(root).Write(dir)
		if err != nil {
			return nil, err
		}
		n, err := configPage().Write(dir)
		if err != nil {
			return nil, err
		}
		return append(names, n), nil
	})
}

func manHeader(section string) manpage.Header {
	return manpage.Header{Section: section, Source: "ovs-agent " + version, Manual: "ovs-agent manual"}
}

// manTree is ovs-agent's pages: cobra's, and the sections only the first
// page has.
func manTree(root *cobra.Command) manpage.Tree {
	def := config.Default()
	return manpage.Tree{
		Root:   root,
		Header: manHeader("8"),
		Extra: []manpage.Section{
			{Title: "Exit status", Items: []manpage.Item{
				{Tag: "0", Text: "Success; for status: the agent is running."},
				{Tag: "1", Text: "The command failed (the message says why); for check-config: the configuration was rejected, every problem named with its file, line and option. An unknown command or flag is 1 too."},
				{Tag: "2", Text: "Bad usage: --config with --run-dir; for repo: bad arguments or a configuration that cannot be read."},
				{Tag: "3", Text: "status: the agent is not running (nothing answers on the unix socket); repo status: the repositories are stopped."},
				{Tag: "4", Text: "status: unknown (the configuration cannot be read, the unix socket is disabled in it, or the agent answered with an error), as LSB init scripts use it."},
			}},
			{Title: "Environment", Items: []manpage.Item{
				{Tag: "OVS_AGENT_CONFIG", Text: "The configuration file when --config is not given; default " + DefaultConfig + "."},
			}},
			{Title: "Files", Items: []manpage.Item{
				{Tag: DefaultConfig, Text: "The configuration, see agent.ini(5)."},
				{Tag: def.Agent.StateDir, Text: "State ([agent] state_dir): the VMM control sockets of running domains, the generated TLS pair."},
				{Tag: def.Server.UnixSocket, Text: "The local API socket ([server] unix_socket); root needs no password on it."},
				{Tag: "/var/log/ovs-agent", Text: "Logs when [log] file is set there (the package's logrotate snippet rotates *.log in it), and the SysV init script's console.log."},
				{Tag: def.Repository.RepositoriesFile + ", " + def.Repository.OptionsFile, Text: "The storage repositories mounted under " + def.Repository.Root + " and their mount options."},
				{Tag: "/lib/systemd/system/ovs-agent.service", Text: "The systemd unit (Type=notify; KillMode=process, so that stopping the agent never stops a domain), with ovs-agent-api.socket and ovs-agent-unix.socket for socket activation."},
				{Tag: "/etc/init.d/ovs-agent", Text: "The SysV init script: start, stop, restart, reload, status, configure."},
			}},
		},
		SeeAlso: []string{"agent.ini(5)", "ovm(1)", "ovs-vmm(8)"},
	}
}

// configPage is agent.ini(5).
func configPage() manpage.ConfigPage {
	return manpage.ConfigPage{
		Name:    "agent.ini",
		Short:   "ovs-agent configuration file",
		Example: config.ExampleINI,
		Header:  manHeader("5"),
		Extra: []manpage.Section{
			{Title: "Files", Items: []manpage.Item{
				{Tag: DefaultConfig, Text: "Where ovs-agent reads it unless --config or OVS_AGENT_CONFIG names another file."},
			}},
			{Title: "Reload", Text: "What a reload (systemctl reload ovs-agent, or SIGHUP) changes at once: access rules, user and password, log files and level, the TLS certificate. Listen addresses, ports, the unix socket, the state directory and the options the text above says so of take effect at the next start; the log says which."},
		},
		SeeAlso: []string{"ovs-agent(8)", "ovm(1)"},
	}
}
