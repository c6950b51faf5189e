package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// poolCommands are `ovm pool ...`: the server pool the agent is a member
// of. Changes go to the pool master; any member's agent forwards them.
func poolCommands(g *globals) []*cobra.Command {
	p := &cobra.Command{Use: "pool", Short: "The server pool: members, pool domains, placement, HA, maintenance",
		Long: `The server pool the agent is a member of ([pool] in agent.ini). Any member's
agent answers; changes are made by the pool master, to which the agent
forwards them.`}
	p.AddCommand(
		&cobra.Command{Use: "info", Short: "Show the pool: master, members with free memory, engines and state", Args: cobra.NoArgs,
			Example: "  ovm pool info\n  ovm --url https://server2:8899 --insecure --password-file ~/.ovm-pass pool info",
			RunE:    g.structRun("pool.info", printPoolInfo)},
		poolDomainsCommand(g),
		poolCreateCommand(g),
		poolRefCommand(g, "start", "Want a pool domain running: the master places and starts it", "pool.start_domain"),
		poolRefCommand(g, "stop", "Want a pool domain stopped: the master has its server stop it", "pool.stop_domain"),
		poolRefCommand(g, "delete", "Remove a pool domain that runs nowhere (its disks stay)", "pool.delete_domain"),
		poolAdoptCommand(g),
		poolHACommand(g),
		poolMaintenanceCommand(g),
	)
	return []*cobra.Command{p}
}

func printPoolInfo(w io.Writer, m map[string]any) {
	master := m["master"]
	if s, _ := master.(string); s == "" {
		master = "(none: an election is under way)"
	}
	fmt.Fprintf(w, "pool %v, master %v, %v domains\n", m["name"], master, m["domains"])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tFREE MiB\tENGINES\tADDRESS\tMASTER")
	members, _ := m["members"].([]any)
	for _, x := range members {
		r, _ := x.(map[string]any)
		mark := ""
		if b, _ := r["master"].(bool); b {
			mark = "*"
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%s\t%v\t%s\n", r["host"], r["state"], r["free_memory_mib"], joinAny(r["engines"]), orDash(r["address"]), mark)
	}
	tw.Flush()
	if nm := joinAny(m["maintenance_not_members"]); nm != "-" {
		fmt.Fprintf(w, "in maintenance, not members now: %s\n", nm)
	}
}

func joinAny(v any) string {
	list, _ := v.([]any)
	if len(list) == 0 {
		return "-"
	}
	s := make([]string, len(list))
	for i, x := range list {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func poolDomainsCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "domains", Short: "List the pool's domains: where each runs, desired state, HA, status and why", Args: cobra.NoArgs,
		Example: "  ovm pool domains\n  ovm -o json pool domains",
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ds []map[string]any
			if err := g.call("pool.domains", &ds); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(ds))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUUID\tHOST\tDESIRED\tHA\tPRIO\tMiB\tSTATE\tREASON")
			for _, d := range ds {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", d["name"], d["uuid"], orDash(d["host"]), d["desired"], d["ha"], d["priority"], d["memory_mib"], d["state"], orDash(d["reason"]))
			}
			return tw.Flush()
		}}
}

func poolCreateCommand(g *globals) *cobra.Command {
	var ha, noStart bool
	var preferred []string
	var priority int
	c := &cobra.Command{Use: "create [--ha] [--preferred HOST,...] [--priority N] [--no-start] VM.CFG",
		Short: "Add a domain to the pool from a vm.cfg and have the master place and start it",
		Long: `Add a domain to the pool from a vm.cfg file read here (its disks must be on a
repository every member mounts). Without --preferred the master places it on
the member with the most free memory that can run it (Auto); with
--preferred only on those members (Manual). --ha restarts it on another
member when its server fails; --priority orders the domains waiting for
room (higher first).`,
		Example: "  ovm pool create --ha /OVS/running_pool/web1/vm.cfg\n  ovm pool create --preferred server1,server2 --priority 10 db.cfg",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			text, err := os.ReadFile(a[0])
			if err != nil {
				return usageError{fmt.Errorf("read the vm.cfg: %w", err)}
			}
			opts := map[string]any{"ha": ha, "priority": int64(priority), "start": !noStart}
			addPreferred(opts, preferred)
			var out map[string]any
			if err := g.call("pool.create_domain", &out, string(text), opts); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, printStruct)
		}}
	f := c.Flags()
	f.BoolVar(&ha, "ha", false, "restart the domain elsewhere when its server fails")
	f.StringSliceVar(&preferred, "preferred", nil, "the only members it may run on (Manual placement)")
	f.IntVar(&priority, "priority", 0, "HA restart priority, -1000 to 1000: higher starts first")
	f.BoolVar(&noStart, "no-start", false, "add it stopped")
	return c
}

func poolRefCommand(g *globals, verb, short, method string) *cobra.Command {
	return &cobra.Command{Use: verb + " NAME|UUID", Short: short, Args: cobra.ExactArgs(1),
		Example: fmt.Sprintf("  ovm pool %s web1", verb),
		RunE: func(cmd *cobra.Command, a []string) error {
			if method == "pool.delete_domain" {
				if err := g.call(method, nil, a[0]); err != nil {
					return err
				}
				if g.json() {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"name": a[0], "deleted": true})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s removed from the pool\n", a[0])
				return nil
			}
			var out map[string]any
			if err := g.call(method, &out, a[0]); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, printStruct)
		}}
}

func poolMaintenanceCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "maintenance HOST on|off", Short: "Put a member in maintenance (no new placements) or take it out",
		Long:    "A member in maintenance gets no new placements; the domains running there stay (moving them away first is not done yet).",
		Example: "  ovm pool maintenance server2 on\n  ovm pool maintenance server2 off",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			on, err := onOff("maintenance", a[0], a[1])
			if err != nil {
				return err
			}
			if err := g.call("pool.maintenance", nil, a[0], on); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"host": a[0], "maintenance": on})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: maintenance %s\n", a[0], a[1])
			return nil
		}}
}

func poolAdoptCommand(g *globals) *cobra.Command {
	var ha bool
	var preferred []string
	var priority int
	c := &cobra.Command{Use: "adopt [--ha] [--preferred HOST,...] [--priority N] NAME",
		Short: "Make a domain running on this agent a pool domain, without stopping it",
		Long: `Make a domain that runs on the agent called (outside the pool) a pool domain,
without stopping it: the master records it from the vm.cfg it runs with and
this agent takes its ownership. From then on the pool stops, moves and (with
--ha) restarts it on another member when its server fails, so its disks must
be on a repository every member mounts. --preferred and --priority are
pool create's.`,
		Example: "  ovm pool adopt --ha web1\n  ovm --url https://server2:8899 --insecure --password-file ~/.ovm-pass pool adopt --ha --priority 10 db1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			opts := map[string]any{"ha": ha, "priority": int64(priority)}
			addPreferred(opts, preferred)
			var out map[string]any
			if err := g.call("pool.adopt_domain", &out, a[0], opts); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, printStruct)
		}}
	f := c.Flags()
	f.BoolVar(&ha, "ha", false, "restart the domain elsewhere when its server fails")
	f.StringSliceVar(&preferred, "preferred", nil, "the only members it may run on (Manual placement)")
	f.IntVar(&priority, "priority", 0, "HA restart priority, -1000 to 1000: higher starts first")
	return c
}

func poolHACommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "ha NAME|UUID on|off", Short: "Turn a pool domain's HA on or off",
		Long:    "With HA on, the master starts the domain on another member when the server it runs on fails; off, it stays stopped then.",
		Example: "  ovm pool ha web1 on\n  ovm pool ha web1 off",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			on, err := onOff("ha", a[0], a[1])
			if err != nil {
				return err
			}
			var out map[string]any
			if err := g.call("pool.set_ha", &out, a[0], on); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, printStruct)
		}}
}

// onOff reads a command's on|off argument.
func onOff(verb, subject, arg string) (bool, error) {
	switch arg {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, usageError{fmt.Errorf("%s %s %q: want on or off", verb, subject, arg)}
}

// addPreferred puts the --preferred members into a pool call's options.
func addPreferred(opts map[string]any, preferred []string) {
	if len(preferred) == 0 {
		return
	}
	list := make([]any, len(preferred))
	for i, p := range preferred {
		list[i] = p
	}
	opts["preferred"] = list
}
