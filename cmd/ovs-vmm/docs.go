package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// writeManPage writes ovs-vmm.8 into dir (make deb runs `ovs-vmm --man
// DIR`). ovs-vmm's flags are the standard library's, not cobra's: the page
// is made from them through a cobra command that exists only for it, so
// that it reads like the other pages. It returns the exit code.
func writeManPage(dir string, flags *flag.FlagSet) int {
	c := &cobra.Command{
		Use:   "ovs-vmm --config VM.CFG --dir DIR --socket PATH",
		Short: "Run one domain (the VMM process ovs-agent starts for each running domain)",
		Long: `ovs-vmm runs one domain. ovs-agent starts one per running domain, in its own
session, so that the domain outlives the agent: stopping or restarting the
agent never stops a guest, and a restarted agent finds its domains again
through their control sockets under the state directory. It is not meant to
be run by hand.

It owns the guest's memory, its vCPUs and its console; it runs the
page-transfer sender or receiver of a migration, save or restore on the
connections and files the agent hands it; with the qemu engine it supervises
a qemu-system-x86_64 child over QMP. It answers the agent on its control
socket and, when it ends, writes why to exit.json in the domain's directory.`,
	}
	flags.VisitAll(func(f *flag.Flag) {
		c.Flags().AddGoFlag(f)
		c.Flags().Lookup(f.Name).DefValue = f.DefValue // not the value given now (--man DIR)
	})
	t := manpage.Tree{
		Root:   c,
		Header: manpage.Header{Section: "8", Source: "ovs-agent " + version, Manual: "ovs-agent manual"},
		Extra: []manpage.Section{
			{Title: "Exit status", Text: "Why it ended is also in exit.json in the domain's directory (reason and detail), which the agent reads.", Items: []manpage.Item{
				{Tag: "0", Text: "The domain ended cleanly: shut down, destroyed, migrated away or saved; or the guest rebooted itself (the agent does what the domain's on_reboot says)."},
				{Tag: "1", Text: "The machine could not start (bad vm.cfg, engine or image), or could not start after an incoming migration."},
				{Tag: "2", Text: "The guest crashed; also bad usage (a required flag missing)."},
				{Tag: "3", Text: "An incoming migration was aborted, or the guest was fenced: its pool lease's run-until time passed (--run-until)."},
			}},
		},
		SeeAlso: []string{"ovs-agent(8)", "ovm(1)"},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ovs-vmm: %v\n", err)
		return 1
	}
	names, err := t.Write(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ovs-vmm: %v\n", err)
		return 1
	}
	for _, n := range names {
		fmt.Println(n)
	}
	return 0
}
