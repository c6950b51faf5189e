package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// genManCmd is the hidden `ovm gen-man DIR` that make deb runs: the
// manual pages of every command (section 1: ovm.1, ovm-migrate.1, ...),
// the first with the exit status and environment below. Bash and zsh
// completion come from cobra's own `ovm completion`.
func genManCmd(root *cobra.Command) *cobra.Command {
	return manpage.GenCommand("Write the manual pages ovm*.1 into DIR", manTree(root).Write)
}

func manTree(root *cobra.Command) manpage.Tree {
	code := strconv.Itoa
	return manpage.Tree{
		Root:   root,
		Header: manpage.Header{Section: "1", Source: "ovs-agent " + version, Manual: "ovs-agent manual"},
		Extra: []manpage.Section{
			{Title: "Exit status", Items: []manpage.Item{
				{Tag: code(exitOK), Text: "Success."},
				{Tag: code(exitFault), Text: "The agent answered with a fault (its message and code are printed), or a dry run found the migration would fail."},
				{Tag: code(exitUsage), Text: "Bad usage: an unknown command or flag, wrong arguments, an unreadable password file."},
				{Tag: code(exitConn), Text: "The agent could not be reached (a hint says what to check)."},
				{Tag: code(exitRefused), Text: "The agent refused the caller: a wrong user or password, or its allow/deny rules."},
			}},
			{Title: "Environment", Items: []manpage.Item{
				{Tag: "OVM_URL", Text: "The agent's URL when --url is not given; empty: unix://" + client.DefaultSocket + ", where root needs no password."},
				{Tag: "OVM_USER", Text: "The API user for TCP connections (--user; default admin)."},
				{Tag: "OVM_PASSWORD_FILE", Text: "A file whose first line is the API password (--password-file)."},
				{Tag: "OVM_PASSWORD", Text: "The API password itself, when no password file is given."},
				{Tag: "OVM_TARGET_PASSWORD_FILE", Text: "For migrate: a file whose first line is the target agent's password (--target-password-file)."},
				{Tag: "OVM_CACERT", Text: "The CA certificate that signed the agent's certificate (--cacert)."},
			}},
		},
		SeeAlso: []string{"ovs-agent(8)", "agent.ini(5)"},
	}
}
