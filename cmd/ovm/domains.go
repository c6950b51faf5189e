package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/spf13/cobra"
)

// domainCommands are the commands of the domain namespace, one function
// (or one structCommand) each.
func domainCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		createCommand(g), listCommand(g),
		structCommand(g, "info DOMAIN", "Show a domain: state, memory, vCPUs, CPU time, dirty rate, uptime, engine", 1, "domain.info", printStruct),
		deleteCommand(g),
		saveCommand(g),
		structCommand(g, "restore FILE", "Start a domain from a save image on the agent's host (xm restore)", 1, "domain.restore", printStateReason),
		structCommand(g, "start DOMAIN", "Start a stopped domain", 1, "domain.start", printState),
		structCommand(g, "destroy DOMAIN", "Stop a domain at once (power off)", 1, "domain.destroy", printState),
		structCommand(g, "pause DOMAIN", "Pause a running domain", 1, "domain.pause", printState),
		structCommand(g, "unpause DOMAIN", "Continue a paused domain", 1, "domain.unpause", printState),
		timedCommand(g, "shutdown", "Shut a domain down cleanly; destroy it after --timeout seconds", "domain.shutdown"),
		timedCommand(g, "reboot", "Shut a domain down cleanly and start it again", "domain.reboot"),
		consoleCommand(g), topCommand(g), memSetCommand(g),
	}
}

// memSetCommand is `ovm mem-set DOMAIN MiB` (xm mem-set).
func memSetCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "mem-set DOMAIN MiB",
		Short: "Give a running qemu domain a new memory target in MiB through its balloon, up to its maxmem (xm mem-set; the vm.cfg is left as written)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			mib, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || mib < 1 {
				return usageError{fmt.Errorf("memory %q: give a whole number of MiB, 1 or more", args[1])}
			}
			var out map[string]any
			if err := g.call("domain.set_memory", &out, args[0], mib); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, func(w io.Writer, m map[string]any) {
				fmt.Fprintf(w, "%s: memory target %s (maxmem %s)\n", m["name"], formatScalar("memory_target", m["memory_target"]), formatScalar("maxmem", m["maxmem"]))
			})
		},
	}
}

// printState prints a domain's name and state.
func printState(w io.Writer, m map[string]any) {
	fmt.Fprintf(w, "%s: %v\n", m["name"], m["state"])
}

// printStateReason prints a domain's name, state and why.
func printStateReason(w io.Writer, m map[string]any) {
	fmt.Fprintf(w, "%s: %v (%v)\n", m["name"], m["state"], m["reason"])
}

// timedCommand is a lifecycle command on a domain that takes --timeout.
func timedCommand(g *globals, use, short, method string) *cobra.Command {
	var timeout int
	c := &cobra.Command{
		Use:   use + " DOMAIN",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			if err := g.call(method, &out, args[0], timeout); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, printStateReason)
		},
	}
	c.Flags().IntVarP(&timeout, "timeout", "t", 60, "seconds to wait for a clean stop before destroying the domain")
	return c
}

// createCommand is `ovm create`, from a vm.cfg file or a template.
func createCommand(g *globals) *cobra.Command {
	var fromTemplate, repoUUID string
	create := &cobra.Command{
		Use:   "create VM.CFG | create --from-template TEMPLATE --repo UUID NAME",
		Short: "Register a domain from a vm.cfg file (read here, sent to the agent; - reads standard input), or from a repository template",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fromTemplate != "" {
				return g.createFromTemplate(cmd.OutOrStdout(), fromTemplate, repoUUID, args[0])
			}
			return g.createFromFile(cmd.OutOrStdout(), cmd.InOrStdin(), args[0])
		},
	}
	create.Flags().StringVar(&fromTemplate, "from-template", "", "copy this template (seed_pool) into running_pool/NAME and register it")
	create.Flags().StringVar(&repoUUID, "repo", "", "the repository holding the template (default: the one mounted repository that has it)")
	return create
}

// createFromTemplate registers domain name from a repository's template
// (repoUUID: the one mounted repository that has it if empty).
func (g *globals) createFromTemplate(w io.Writer, template, repoUUID, name string) error {
	if repoUUID == "" {
		u, err := g.findTemplate(template)
		if err != nil {
			return err
		}
		repoUUID = u
	}
	var out map[string]any
	if err := g.call("domain.create_from_template", &out, repoUUID, template, name); err != nil {
		return err
	}
	return g.show(w, out, func(w io.Writer, m map[string]any) {
		fmt.Fprintf(w, "created %s (uuid %s) from template %s, %v\n", m["name"], m["uuid"], template, m["state"])
	})
}

// createFromFile registers a domain from the vm.cfg file path, read here
// ("-": standard input).
func (g *globals) createFromFile(w io.Writer, stdin io.Reader, path string) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, vmcfg.MaxFileSize+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return usageError{err}
	}
	if len(data) > vmcfg.MaxFileSize {
		// The agent refuses a larger vm.cfg too; say so before sending it,
		// and never send a cut one.
		return usageError{fmt.Errorf("%s: larger than %d bytes: a vm.cfg is at most %d bytes", path, vmcfg.MaxFileSize, vmcfg.MaxFileSize)}
	}
	var out map[string]any
	if err := g.call("domain.create", &out, string(data), filepath.Base(path)); err != nil {
		return err
	}
	return g.show(w, out, func(w io.Writer, m map[string]any) {
		fmt.Fprintf(w, "created %s (uuid %s), %v\n", m["name"], m["uuid"], m["state"])
		if ws, _ := m["warnings"].([]any); len(ws) > 0 {
			for _, x := range ws {
				fmt.Fprintf(w, "warning: %v\n", x)
			}
		}
	})
}

func listCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []map[string]any
			if err := g.call("domain.list", &out); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(out))
			}
			printDomainTable(cmd.OutOrStdout(), out)
			return nil
		},
	}
}

func deleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete DOMAIN",
		Short: "Remove a stopped domain from this host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.call("domain.delete", nil, args[0]); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"name": args[0], "deleted": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		},
	}
}

// findTemplate finds the one mounted repository that holds template name.
func (g *globals) findTemplate(name string) (string, error) {
	var rep struct {
		Repositories []struct {
			UUID  string `xmlrpc:"uuid"`
			State string `xmlrpc:"state"`
		} `xmlrpc:"repositories"`
	}
	if err := g.call("repository.list", &rep); err != nil {
		return "", err
	}
	var found []string
	for _, r := range rep.Repositories {
		if r.State != "mounted" && r.State != "in use" {
			continue
		}
		var ts []struct {
			Name string `xmlrpc:"name"`
		}
		if err := g.call("repository.templates", &ts, r.UUID); err != nil {
			continue
		}
		for _, t := range ts {
			if t.Name == name {
				found = append(found, r.UUID)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", usageError{fmt.Errorf("no mounted repository has a template named %q (ovm template list UUID)", name)}
	case 1:
		return found[0], nil
	}
	return "", usageError{fmt.Errorf("template %q is in several repositories (%s): choose one with --repo", name, strings.Join(found, ", "))}
}

// show prints a struct result as JSON or with human.
func (g *globals) show(w io.Writer, m map[string]any, human func(io.Writer, map[string]any)) error {
	if g.json() {
		return writeJSON(w, m)
	}
	human(w, m)
	return nil
}

func printDomainTable(w io.Writer, doms []map[string]any) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tMEM(MiB)\tVCPUS\tENGINE\tCPU\tDIRTY\tUPTIME\tREASON")
	for _, d := range doms {
		engine := orDash(d["engine"])
		if a, _ := d["accel"].(string); a != "" {
			engine = fmt.Sprintf("%v/%s", engine, a) // qemu/tcg
		}
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%s\t%s\t%s\t%v\n", d["name"], d["state"], d["memory"], d["vcpus"], engine,
			secondsText(num(d["cpu_time_seconds"])), rateText(num(d["dirty_rate"])), formatScalar("uptime_seconds", d["uptime_seconds"]), orDash(d["reason"]))
	}
	tw.Flush()
}

// nonNil is list, or an empty list for none: a JSON [] rather than null.
func nonNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func topCommand(g *globals) *cobra.Command {
	var iterations int
	var delay time.Duration
	c := &cobra.Command{
		Use:   "top",
		Short: "Show host load and every domain's CPU, dirty rate and memory, refreshed (like xm top)",
		Long: `Show host load and every domain's CPU, dirty rate and memory, refreshed
every --delay until Ctrl-C (or -n times), like xm top.

With -o json each refresh is one compact JSON document on its own line
(JSON lines: host, memory_committed, domains, as host.top answers); -n 1
prints exactly one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(stop)
			tty := g.isTerminal(out)
			for i := 0; iterations <= 0 || i < iterations; i++ {
				var top struct {
					Host      map[string]any   `xmlrpc:"host" json:"host"`
					Committed int64            `xmlrpc:"memory_committed" json:"memory_committed"`
					Domains   []map[string]any `xmlrpc:"domains" json:"domains"`
				}
				if err := g.call("host.top", &top); err != nil {
					return err
				}
				if g.json() {
					top.Domains = nonNil(top.Domains)
					if err := writeJSONLine(out, top); err != nil {
						return err
					}
				} else {
					if tty {
						io.WriteString(out, "\033[H\033[2J")
					}
					h := top.Host
					fmt.Fprintf(out, "ovm top - %s  load %.2f %.2f %.2f  cpu %.1f%% of %v  mem %s total, %s available, %s committed to domains\n\n",
						time.Now().Format("15:04:05"), num(h["load1"]), num(h["load5"]), num(h["load15"]), num(h["cpu_busy_percent"]), h["cpu_count"],
						sizeText(int64(num(h["memory_total"]))), sizeText(int64(num(h["memory_available"]))), sizeText(top.Committed))
					printDomainTable(out, top.Domains)
				}
				if iterations > 0 && i == iterations-1 {
					break
				}
				select {
				case <-stop:
					return nil
				case <-time.After(delay):
				}
			}
			return nil
		},
	}
	c.Flags().IntVarP(&iterations, "iterations", "n", 0, "refresh this many times, then exit (0: until Ctrl-C)")
	c.Flags().DurationVarP(&delay, "delay", "d", 2*time.Second, "time between refreshes")
	return c
}

// saveCommand is `ovm save DOMAIN FILE`: domain.save, with a progress bar
// on a terminal (stderr) while it runs, from the save's status that
// domain.info shows; what it prints when done is what it always printed.
func saveCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "save DOMAIN FILE", Short: "Save a domain's memory and state to FILE on the agent's host; the domain is suspended (xm save)",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var view progressView
			if g.isTerminal(errOut) {
				view = newProgress(errOut, true)
			}
			var res map[string]any
			done := make(chan error, 1)
			go func() { done <- g.call("domain.save", &res, args[0], args[1]) }()
			tick := time.NewTicker(saveProgressEvery)
			defer tick.Stop()
			var last map[string]any
			for {
				select {
				case err := <-done:
					if view != nil && last != nil {
						view.finish(last, err == nil)
					}
					if err != nil {
						return err
					}
					return g.show(out, res, printStateReason)
				case <-tick.C:
					if view == nil {
						continue
					}
					var in map[string]any
					if g.call("domain.info", &in, args[0]) != nil {
						continue
					}
					if st, ok := in["save"].(map[string]any); ok {
						last = st
						view.update(st)
					}
				}
			}
		}}
}

// saveProgressEvery is how often ovm save reads the save's progress.
const saveProgressEvery = 250 * time.Millisecond
