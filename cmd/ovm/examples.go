package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples are the Example text of each command, by its path; a command
// that sets its own Example keeps it. Every command has one
// (TestEveryCommandHasAnExample), and every entry names a command.
var examples = map[string]string{
	"ovm version":    "ovm version\novm -o json version",
	"ovm host-info":  "ovm host-info\novm -o json host-info | jq .memory_total",
	"ovm host-stats": "ovm host-stats",
	"ovm status":     "ovm status\novm --url https://server1:8899 --password-file ~/.ovm-pass status",
	"ovm call":       "ovm call system.listMethods\novm call domain.info web1\novm -o json call agent.echo 42 '{\"a\":[1,\"x\"]}'",
	"ovm create":     "ovm create /OVS/running_pool/web1/vm.cfg\novm create - < web1.cfg\novm create --from-template OVM_EL5U3_X86_PVM_4GB web2",
	"ovm list":       "ovm list\novm -o json list | jq -r '.[] | select(.state == \"running\") | .name'",
	"ovm info":       "ovm info web1\novm -o json info web1",
	"ovm delete":     "ovm delete web1",
	"ovm save":       "ovm save web1 /OVS/running_pool/web1/web1.save",
	"ovm restore":    "ovm restore /OVS/running_pool/web1/web1.save",
	"ovm start":      "ovm start web1",
	"ovm destroy":    "ovm destroy web1",
	"ovm pause":      "ovm pause web1",
	"ovm unpause":    "ovm unpause web1",
	"ovm shutdown":   "ovm shutdown web1\novm shutdown -t 300 web1",
	"ovm reboot":     "ovm reboot web1",
	"ovm console":    "ovm console web1\novm console -f web1\necho root | ovm console web1\novm -o json console -f web1",
	"ovm top":        "ovm top\novm top -n 1\novm -o json top -d 5s",
	"ovm mem-set":    "ovm mem-set web1 1024",
	"ovm migrate": "ovm migrate -l --target-password-file ~/.server2-pass web1 server2\n" +
		"ovm migrate -n -l web1 server2\n" +
		"ovm migrate -l --ssl -r 100 --max-downtime 500 web1 server2:8003\n" +
		"ovm migrate --start --target-repo 0004fb00000300000000000000000001 web1 server2\n" +
		"ovm -o json migrate -l web1 server2 > result.json",
	"ovm migrate-status":         "ovm migrate-status\novm migrate-status 1f6c2a9e\novm -o json migrate-status",
	"ovm migrate-cancel":         "ovm migrate-cancel 1f6c2a9e",
	"ovm detach":                 "ovm detach web1\novm detach --repo 0004fb00000300000000000000000001 web1",
	"ovm attach":                 "ovm attach /OVS/Repositories/0004fb00000300000000000000000001/running_pool/web1\novm attach -F /OVS/running_pool/web1/ovs-detached.json",
	"ovm repo":                   "ovm repo list\novm repo add --options vers=4 nfs1:/export/repo1",
	"ovm repo list":              "ovm repo list\novm -o json repo list",
	"ovm repo reload":            "ovm repo reload",
	"ovm repo status":            "ovm repo status 0004fb00000300000000000000000001",
	"ovm repo add":               "ovm repo add /dev/sdb1\novm repo add --options vers=4,soft nfs1:/export/repo1",
	"ovm repo remove":            "ovm repo remove 0004fb00000300000000000000000001",
	"ovm repo secondary":         "ovm repo secondary\novm -o json repo secondary",
	"ovm repo secondary-unmount": "ovm repo secondary-unmount 6a5c8e3d-9f1b-3c2a-8e7d-1b2c3d4e5f60",
	"ovm template":               "ovm template list 0004fb00000300000000000000000001",
	"ovm iso":                    "ovm iso list 0004fb00000300000000000000000001",
	"ovm pool":                   "ovm pool info\novm pool domains",
	"ovm help":                   "ovm help migrate\novm help repo add",
	"ovm completion":             "ovm completion bash > /etc/bash_completion.d/ovm",
	"ovm completion bash":        "ovm completion bash > /etc/bash_completion.d/ovm",
	"ovm completion zsh":         "ovm completion zsh > \"${fpath[1]}/_ovm\"",
	"ovm completion fish":        "ovm completion fish > ~/.config/fish/completions/ovm.fish",
	"ovm completion powershell":  "ovm completion powershell | Out-String | Invoke-Expression",
}

// setExamples gives every command under root its example (indented, as
// cobra prints them), unless it has its own.
func setExamples(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if ex, ok := examples[c.CommandPath()]; ok && c.Example == "" {
			c.Example = "  " + strings.ReplaceAll(ex, "\n", "\n  ")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
