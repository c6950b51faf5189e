package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
	"github.com/spf13/cobra"
)

type migrateFlags struct {
	live         bool
	rate         int
	dryRun       bool
	ssl          bool
	maxDowntime  int
	parallel     int
	port         int
	targetUser   string
	passwordFile string
	fingerprint  string
	detach       bool
	compress     string
	start        bool
	remove       bool
	force        bool
	targetRepo   string
}

func (f *migrateFlags) options() (map[string]any, error) {
	o := map[string]any{"live": f.live, "ssl": f.ssl, "user": f.targetUser}
	if f.rate > 0 {
		o["rate"] = f.rate
	}
	if f.maxDowntime > 0 {
		o["max_downtime"] = f.maxDowntime
	}
	if f.parallel > 0 {
		o["parallel"] = f.parallel
	}
	if f.port > 0 {
		o["port"] = f.port
	}
	if f.fingerprint != "" {
		o["fingerprint"] = f.fingerprint
	}
	if f.compress != "" {
		o["compress"] = f.compress
	}
	if f.start {
		o["start"] = true
	}
	if f.remove {
		o["remove"] = true
	}
	if f.force {
		o["force"] = true
	}
	if f.targetRepo != "" {
		o["target_repo"] = f.targetRepo
	}
	pf := f.passwordFile
	if pf == "" {
		pf = os.Getenv("OVM_TARGET_PASSWORD_FILE")
	}
	if pf != "" {
		pw, err := passwordfile.Read(pf)
		if err != nil {
			return nil, usageError{fmt.Errorf("target password file: %w", err)}
		}
		o["password"] = pw
	}
	return o, nil
}

// migrateCommands are migrate, migrate-status and migrate-cancel.
func migrateCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{migrateCommand(g), migrateStatusCommand(g),
		structCommand(g, "migrate-cancel ID", "Cancel a migration: the domain keeps running where it was", 1, "migration.cancel",
			func(w io.Writer, m map[string]any) { fmt.Fprintf(w, "%v: %v\n", m["id"], m["phase"]) }),
	}
}

func migrateCommand(g *globals) *cobra.Command {
	f := &migrateFlags{}
	mig := &cobra.Command{
		Use:   "migrate [-l] [-r MB] [-n] [--ssl] [--max-downtime MS] DOMAIN HOST[:PORT]",
		Short: "Move a domain to another host (-l live, -n dry run), with a progress bar",
		Long: `Move a domain to the agent on HOST (relocation port 8002, or 8003 with --ssl).

The target agent's credentials come from --target-user (default admin) and
--target-password-file (or OVM_TARGET_PASSWORD_FILE); a password is never
taken from the command line. With -n nothing moves: every reason the
migration would fail is printed, one per line.

Progress: on a terminal a bar shows the phase, the share done, the bytes
sent of the total, the rate, the ETA (what is left at the current rate; a
live migration's total grows while the guest dirties pages) and, live, the
round, the dirty rate and the throttle. Off a terminal (a pipe, a file) it
prints a plain line each time the figures change:
  [#########.....................]  31% copying    round 1  sent 40 MiB  left 88 MiB  ...
then the result line ("migrated ..." or "moved ... offline ..."). Ctrl-C
cancels the migration.

With -o json standard output gets one document, the migration's last
migration.status (also when it failed or was cancelled: exit code 1), and
the bar goes to standard error when that is a terminal; --detach prints
{"id": ID}; -n prints migration.check's answer (exit code 1 when it finds
problems).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.dryRun {
				return g.dryRun(out, args[0], args[1], opts)
			}
			var id string
			if err := g.call("domain.migrate", &id, args[0], args[1], opts); err != nil {
				return err
			}
			if f.detach {
				if g.json() {
					return writeJSON(out, map[string]any{"id": id})
				}
				fmt.Fprintln(out, id)
				return nil
			}
			return g.follow(out, cmd.ErrOrStderr(), id)
		},
	}
	f.bind(mig)
	return mig
}

// bind defines the migrate command's flags.
func (f *migrateFlags) bind(c *cobra.Command) {
	fl := c.Flags()
	fl.BoolVarP(&f.live, "live", "l", false, "live migration: the domain keeps running while its memory moves")
	fl.IntVarP(&f.rate, "rate", "r", 0, "bandwidth cap in MB/s, 1 MB = 1,000,000 bytes as xm migrate -r (0: none; ovm prints rates in MiB/s)")
	fl.BoolVarP(&f.dryRun, "dry-run", "n", false, "check only: say every reason the migration would fail")
	fl.BoolVar(&f.ssl, "ssl", false, "use the TLS relocation port")
	fl.IntVar(&f.maxDowntime, "max-downtime", 0, "downtime target in ms (default 300)")
	fl.IntVar(&f.parallel, "parallel", 0, "TCP streams (default: the agent's choice)")
	fl.IntVar(&f.port, "port", 0, "relocation port of the target (default 8002, 8003 with --ssl)")
	fl.StringVar(&f.targetUser, "target-user", "admin", "the target agent's API user")
	fl.StringVar(&f.passwordFile, "target-password-file", "", "file whose first line is the target agent's password")
	fl.StringVar(&f.fingerprint, "fingerprint", "", "SHA-256 of the target's TLS certificate (ovs-agent status shows it)")
	fl.BoolVar(&f.detach, "detach", false, "print the migration id and return at once")
	fl.StringVar(&f.compress, "compress", "", "page compression: none, s2, zstd or auto (default: the agent's choice)")
	fl.BoolVar(&f.start, "start", false, "offline migration: start the domain on the target afterwards")
	fl.BoolVar(&f.remove, "remove", false, "offline migration: remove the source copy of its disks instead of keeping it renamed")
	fl.BoolVarP(&f.force, "force", "F", false, "offline migration: skip validation on the target (logged there)")
	fl.StringVar(&f.targetRepo, "target-repo", "", "offline migration: UUID of the target repository for copied disks")
}

// dryRun is migrate -n: it prints every problem the target found and the
// estimate, and fails when there is a problem.
func (g *globals) dryRun(out io.Writer, domain, target string, opts map[string]any) error {
	var res struct {
		OK         bool           `xmlrpc:"ok" json:"ok"`
		Problems   []string       `xmlrpc:"problems" json:"problems"`
		Estimate   map[string]any `xmlrpc:"estimate" json:"estimate,omitempty"`
		NoEstimate string         `xmlrpc:"no_estimate" json:"no_estimate,omitempty"`
		Target     *dryRunTarget  `xmlrpc:"target" json:"target,omitempty"`
	}
	if err := g.call("migration.check", &res, domain, target, opts); err != nil {
		return err
	}
	if g.json() {
		res.Problems = nonNil(res.Problems)
		if err := writeJSON(out, res); err != nil {
			return err
		}
		if !res.OK {
			return &dryRunFailed{n: len(res.Problems)}
		}
		return nil
	}
	if res.OK {
		fmt.Fprintf(out, "dry run: %s can move to %s\n", domain, target)
	} else {
		fmt.Fprintf(out, "dry run: %s cannot move to %s:\n", domain, target)
		for _, p := range res.Problems {
			fmt.Fprintf(out, "  %s\n", p)
		}
	}
	printTarget(out, target, res.Target)
	printEstimate(out, res.Estimate, res.NoEstimate)
	if !res.OK {
		return &dryRunFailed{n: len(res.Problems)}
	}
	return nil
}

// dryRunTarget is what the target of a qemu domain's dry run says it
// offers the domain (migration.check's target).
type dryRunTarget struct {
	QEMUVersion string           `xmlrpc:"qemu_version" json:"qemu_version,omitempty"`
	QEMUProblem string           `xmlrpc:"qemu_problem" json:"qemu_problem,omitempty"`
	Machines    []string         `xmlrpc:"machines" json:"machines,omitempty"`
	Accel       string           `xmlrpc:"accel" json:"accel,omitempty"`
	AccelReason string           `xmlrpc:"accel_reason" json:"accel_reason,omitempty"`
	Files       []dryRunPresence `xmlrpc:"files" json:"files,omitempty"`
	Bridges     []dryRunPresence `xmlrpc:"bridges" json:"bridges,omitempty"`
}

type dryRunPresence struct {
	Name    string `xmlrpc:"name" json:"name"`
	Path    string `xmlrpc:"path" json:"path"`
	Present bool   `xmlrpc:"present" json:"present"`
}

// printTarget prints what the target offers a qemu domain, when it says.
func printTarget(out io.Writer, target string, t *dryRunTarget) {
	if t == nil {
		return
	}
	q := t.QEMUVersion
	if q == "" {
		q = "QEMU (version unknown)"
	}
	accel := t.Accel
	if accel == "" {
		accel = "-"
	}
	fmt.Fprintf(out, "target %s: %s, accel %s (%s), %d machine types\n", target, q, accel, t.AccelReason, len(t.Machines))
	if t.QEMUProblem != "" {
		fmt.Fprintf(out, "  qemu domains cannot start there: %s\n", t.QEMUProblem)
	}
	for _, group := range [][]dryRunPresence{t.Files, t.Bridges} {
		for _, p := range group {
			have := "present"
			if !p.Present {
				have = "MISSING"
			}
			fmt.Fprintf(out, "  %s %s: %s\n", p.Name, p.Path, have)
		}
	}
}

func migrateStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate-status [ID]",
		Short: "Show one migration (or all of them)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				var list []map[string]any
				if err := g.call("migration.list", &list); err != nil {
					return err
				}
				if g.json() {
					return writeJSON(out, nonNil(list))
				}
				for _, m := range list {
					fmt.Fprintf(out, "%v  %v -> %v  %v  %s\n", m["id"], m["domain"], m["target"], m["phase"], progressLine(m))
				}
				return nil
			}
			var st map[string]any
			if err := g.call("migration.status", &st, args[0]); err != nil {
				return err
			}
			return g.show(out, st, printStruct)
		},
	}
}

type dryRunFailed struct{ n int }

func (e *dryRunFailed) Error() string { return fmt.Sprintf("dry run found %d problem(s)", e.n) }

// follow shows the migration's progress until it ends, then what became
// of it; Ctrl-C cancels it. In text mode the progress and the result go
// to out: a bar redrawn in place on a terminal, plain lines otherwise. With
// -o json out gets one document, the last migration.status, and the bar is
// drawn on errOut when that is a terminal (nothing otherwise).
func (g *globals) follow(out, errOut io.Writer, id string) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	var view progressView
	switch {
	case !g.json():
		view = newProgress(out, g.isTerminal(out))
	case g.isTerminal(errOut):
		view = newProgress(errOut, true)
	}
	for {
		var st map[string]any
		if err := g.call("migration.status", &st, id); err != nil {
			if view != nil {
				view.finish(map[string]any{}, false)
			}
			return err
		}
		phase := st["phase"]
		ended := phase == "completed" || phase == "failed" || phase == "cancelled"
		if view != nil {
			if ended {
				view.finish(st, phase == "completed")
			} else {
				view.update(st)
			}
		}
		if ended {
			if g.json() {
				if err := writeJSON(out, st); err != nil {
					return err
				}
			} else if phase == "completed" {
				printMigrated(out, st)
			}
			if phase != "completed" {
				return fmt.Errorf("migration %s %v: %v", id, phase, st["error"])
			}
			return nil
		}
		select {
		case <-stop:
			var c map[string]any
			if err := g.call("migration.cancel", &c, id); err != nil {
				return err
			}
			signal.Stop(stop)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printMigrated is the line on a completed migration.
func printMigrated(out io.Writer, st map[string]any) {
	if st["offline"] == true {
		fmt.Fprintf(out, "moved %v to %v offline in %s: %d disk(s) copied (%s sent, %s already there), %d on shared repositories\n",
			st["domain"], st["target"], secondsText(num(st["total_seconds"])), int64(num(st["copied_disks"])), sizeText(int64(num(st["bytes_sent"]))),
			sizeText(int64(num(st["resumed_bytes"]))), int64(num(st["shared_disks"])))
		if k, _ := st["source_kept_as"].(string); k != "" {
			fmt.Fprintf(out, "the source copy is kept as %s\n", k)
		}
		if e, _ := st["error"].(string); e != "" {
			fmt.Fprintf(out, "warning: %s\n", e)
		}
		return
	}
	fmt.Fprintf(out, "migrated %v to %v in %s, downtime %s, %d rounds, %s sent\n",
		st["domain"], st["target"], secondsText(num(st["total_seconds"])), msText(num(st["downtime_ms"])), int64(num(st["round"])), sizeText(int64(num(st["bytes_sent"]))))
}

func bar(st map[string]any) string {
	const width = 30
	sent, rem := num(st["bytes_sent"]), num(st["bytes_remaining"])
	frac := 0.0
	if sent+rem > 0 {
		frac = sent / (sent + rem)
	}
	if st["offline"] == true {
		frac = num(st["percent"]) / 100
	}
	if st["phase"] == "completed" {
		frac = 1
	}
	n := int(frac * width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + fmt.Sprintf("] %3.0f%%", frac*100)
}

func progressLine(st map[string]any) string {
	return fmt.Sprintf("round %d  sent %s  left %s  %s  dirty %s  downtime~%s  throttle %d%%",
		int64(num(st["round"])), sizeText(int64(num(st["bytes_sent"]))), sizeText(int64(num(st["bytes_remaining"]))),
		rateText(num(st["throughput"])), rateText(num(st["dirty_rate"])), msText(num(st["expected_downtime_ms"])), int64(num(st["throttle_percent"])))
}
