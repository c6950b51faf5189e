package repository

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Controller is what the `ovs-agent repo ...` commands drive. *Manager
// is one (standalone: the command itself mounts); the agent's API client
// is the other (the running agent does the work, and its watcher sees the
// files change too). cmd/ovs-agent picks the agent's when one answers on
// its socket, the Manager otherwise; both serialize on the state lock
// file, so they never mount at the same time.
type Controller interface {
	Status(ctx context.Context) (Report, error)
	Reload(ctx context.Context) (Report, error)
	Start(ctx context.Context) (Report, error)
	Stop(ctx context.Context) (Report, error)
	Make(ctx context.Context, req MakeRequest) (Status, error)
	Add(ctx context.Context, source, options string) (Status, error)
	Offline(ctx context.Context, req OfflineRequest) (Status, error)
}

var _ Controller = (*Manager)(nil)

// Exit codes of the commands (LSB init-script conventions for status).
const (
	ExitOK      = 0 // done; for status: every repository mounted, no problem
	ExitFailed  = 1 // failed, or some repository is not as configured
	ExitUsage   = 2 // bad arguments
	ExitStopped = 3 // status: the repositories are stopped
)

// Commands implements `ovs-agent repo SUBCOMMAND` on a Controller. Each
// method writes its output to out and its errors to errOut, and returns
// the process exit code. The shell wrappers map onto it:
//
//	ovs-makerepo SOURCE SHARED DESCRIPTION  -> ovs-agent repo make SOURCE SHARED DESCRIPTION
//	ovs-offlinerepo [-d] UUID SOURCE        -> ovs-agent repo offline [-d] UUID SOURCE
//	ovsrepositories start|stop|status|restart|reload -> ovs-agent repo start|stop|...
type Commands struct {
	Ctl Controller
}

// Make: ovs-makerepo. Prints the new repository's UUID alone on a line
// (scripts capture it), then nothing else on success.
func (c Commands) Make(ctx context.Context, out, errOut io.Writer, source, shared, description, options string) int {
	st, err := c.Ctl.Make(ctx, MakeRequest{Source: source, Shared: shared, Description: description, Options: options})
	if err != nil {
		fmt.Fprintln(errOut, "ovs-makerepo:", err)
		if st.UUID != "" {
			fmt.Fprintln(out, st.UUID)
		}
		return ExitFailed
	}
	fmt.Fprintln(out, st.UUID)
	if st.State != StateMounted || st.Error != "" {
		fmt.Fprintf(errOut, "ovs-makerepo: repository %s created but %s: %s\n", st.UUID, st.State, st.Error)
		return ExitFailed
	}
	return ExitOK
}

// Add registers an existing repository by its source.
func (c Commands) Add(ctx context.Context, out, errOut io.Writer, source, options string) int {
	st, err := c.Ctl.Add(ctx, source, options)
	if err != nil {
		fmt.Fprintln(errOut, "repo add:", err)
		return ExitFailed
	}
	fmt.Fprintf(out, "%s mounted at %s\n", st.UUID, st.MountPoint)
	return ExitOK
}

// Offline: ovs-offlinerepo [-d] UUID SOURCE.
func (c Commands) Offline(ctx context.Context, out, errOut io.Writer, uuid, source string, del bool) int {
	st, err := c.Ctl.Offline(ctx, OfflineRequest{UUID: uuid, Source: source, Delete: del})
	if err != nil {
		fmt.Fprintln(errOut, "ovs-offlinerepo:", err)
		return ExitFailed
	}
	if del {
		fmt.Fprintf(out, "%s unmounted and removed from the configuration\n", st.UUID)
	} else {
		fmt.Fprintf(out, "%s unmounted (offline until the repositories are started again)\n", st.UUID)
	}
	return ExitOK
}

// Remove is `repo remove UUID`: offline -d without the source check.
func (c Commands) Remove(ctx context.Context, out, errOut io.Writer, uuid string) int {
	return c.Offline(ctx, out, errOut, uuid, "", true)
}

// List prints one line per repository: UUID, state, mount point.
func (c Commands) List(ctx context.Context, out, errOut io.Writer) int {
	rep, err := c.Ctl.Status(ctx)
	if err != nil {
		fmt.Fprintln(errOut, "repo list:", err)
		return ExitFailed
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tSTATE\tSHARED\tMOUNT POINT\tSOURCE")
	for _, s := range rep.Repositories {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.UUID, s.State, dash(s.Shared), s.MountPoint, s.Source)
	}
	tw.Flush()
	return ExitOK
}

// Status prints the table of repositories with sizes and descriptions,
// then every error and configuration problem. With uuids it shows only
// those. Exit: ExitOK when all is as configured, ExitStopped when the
// repositories are stopped, ExitFailed otherwise.
func (c Commands) Status(ctx context.Context, out, errOut io.Writer, uuids ...string) int {
	rep, err := c.Ctl.Status(ctx)
	if err != nil {
		fmt.Fprintln(errOut, "repo status:", err)
		return ExitFailed
	}
	if len(uuids) > 0 {
		var sel []Status
		for _, u := range uuids {
			s, ok := rep.Find(u)
			if !ok {
				fmt.Fprintf(errOut, "repo status: no repository %s\n", u)
				return ExitFailed
			}
			sel = append(sel, s)
		}
		rep.Repositories = sel
	}
	return printReport(out, rep)
}

func printReport(out io.Writer, rep Report) int {
	if rep.Stopped {
		fmt.Fprintln(out, "repositories are stopped (ovsrepositories start mounts them)")
	}
	if len(rep.Repositories) == 0 {
		fmt.Fprintln(out, "no repositories configured")
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UUID\tSTATE\tSHARED\tSIZE\tFREE\tMOUNT POINT\tSOURCE\tOPTIONS\tDESCRIPTION")
		for _, s := range rep.Repositories {
			size, free := "-", "-"
			if s.Size > 0 {
				size, free = humanBytes(s.Size), humanBytes(s.Free)
			}
			mp := s.MountPoint
			if s.ClusterRoot {
				mp += " (cluster root)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.UUID, s.State, dash(s.Shared), size, free, mp, s.Source, dash(s.Options), s.Description)
		}
		tw.Flush()
	}
	for _, s := range rep.Repositories {
		if s.Error != "" {
			fmt.Fprintf(out, "%s: %s\n", s.UUID, s.Error)
		}
		if len(s.Domains) > 0 {
			fmt.Fprintf(out, "%s: used by %s\n", s.UUID, strings.Join(s.Domains, ", "))
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(out, p)
	}
	switch {
	case rep.OK() && rep.Stopped:
		return ExitStopped
	case rep.OK():
		return ExitOK
	}
	return ExitFailed
}

// Reload: ovsrepositories reload.
func (c Commands) Reload(ctx context.Context, out, errOut io.Writer) int {
	return c.report(ctx, out, errOut, "reload", c.Ctl.Reload)
}

// Start: ovsrepositories start.
func (c Commands) Start(ctx context.Context, out, errOut io.Writer) int {
	return c.report(ctx, out, errOut, "start", c.Ctl.Start)
}

// Stop: ovsrepositories stop. Exit ExitOK when everything was unmounted,
// ExitFailed when something stays mounted (in use, or unmount failed).
func (c Commands) Stop(ctx context.Context, out, errOut io.Writer) int {
	rep, err := c.Ctl.Stop(ctx)
	if err != nil {
		fmt.Fprintln(errOut, "repo stop:", err)
		return ExitFailed
	}
	code := printReport(out, rep)
	if code == ExitStopped {
		return ExitOK
	}
	return ExitFailed
}

// Restart: ovsrepositories restart (stop, then start). Repositories in
// use stay mounted through it.
func (c Commands) Restart(ctx context.Context, out, errOut io.Writer) int {
	if _, err := c.Ctl.Stop(ctx); err != nil {
		fmt.Fprintln(errOut, "repo restart:", err)
		return ExitFailed
	}
	return c.Start(ctx, out, errOut)
}

func (c Commands) report(ctx context.Context, out, errOut io.Writer, what string, fn func(context.Context) (Report, error)) int {
	rep, err := fn(ctx)
	if err != nil {
		fmt.Fprintf(errOut, "repo %s: %v\n", what, err)
		if len(rep.Repositories) > 0 {
			printReport(out, rep)
		}
		return ExitFailed
	}
	code := printReport(out, rep)
	if code == ExitStopped {
		return ExitOK
	}
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}
