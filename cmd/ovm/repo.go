package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// repoCommands are `ovm repo ...`, `ovm template list` and `ovm iso list`.
func repoCommands(g *globals) []*cobra.Command {
	repo := &cobra.Command{Use: "repo", Short: "Storage repositories: list, status, add, remove, reload; a manager's secondary mounts"}
	repo.AddCommand(
		repoReportCommand(g, "list", "List the repositories and their state", "repository.list"),
		repoReportCommand(g, "reload", "Re-read /etc/ovs/repositories and apply the difference now", "repository.reload"),
		structCommand(g, "status UUID", "Show one repository", 1, "repository.status", printStruct),
		repoAddCommand(g),
		structCommand(g, "remove UUID", "Unmount a repository and remove it from the files (refused while domains use it)", 1, "repository.remove", printStruct),
		repoSecondaryCommand(g),
		structCommand(g, "secondary-unmount NAME", "Unmount a file system a manager mounted in [agent] secondary_storage_dir (refused while busy)", 1, "repository.secondary_unmount", printStruct),
	)
	return []*cobra.Command{repo,
		repoItemsCommand(g, "template", "List the templates of a repository (seed_pool)", "repository.templates"),
		repoItemsCommand(g, "iso", "List the ISO images of a repository (iso_pool)", "repository.isos"),
	}
}

// repoReportCommand calls a method that returns the repositories' report
// and prints it as a table.
func repoReportCommand(g *globals, use, short, method string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: g.structRun(method, printRepoReport)}
}

func printRepoReport(w io.Writer, rep map[string]any) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tSTATE\tSHARED\tMOUNT POINT\tSOURCE\tSIZE\tFREE\tDESCRIPTION")
	repos, _ := rep["repositories"].([]any)
	for _, x := range repos {
		r, _ := x.(map[string]any)
		fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%s\t%s\t%v\n", r["uuid"], r["state"], orDash(r["shared"]), orDash(r["mount_point"]), r["source"],
			sizeText(int64(num(r["size"]))), sizeText(int64(num(r["free"]))), orDash(r["description"]))
		if e, _ := r["error"].(string); e != "" {
			fmt.Fprintf(tw, "\t  error: %s\n", e)
		}
	}
	tw.Flush()
	if probs, _ := rep["problems"].([]any); len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(w, "problem: %v\n", p)
		}
	}
}

func repoAddCommand(g *globals) *cobra.Command {
	var options string
	add := &cobra.Command{Use: "add [--options OPTIONS] SOURCE", Short: "Add an existing repository (it holds a .ovsrepo) and mount it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			var st map[string]any
			if err := g.call("repository.add", &st, a[0], options); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), st, printStruct)
		}}
	// No -o shorthand: -o is ovm's output format (two -o made cobra panic).
	add.Flags().StringVar(&options, "options", "", "mount options, as mount -o takes them")
	return add
}

// repoItemsCommand is `ovm USE list REPOSITORY-UUID`: a table of the items
// (templates, ISO images) method returns.
func repoItemsCommand(g *globals, use, short, method string) *cobra.Command {
	return &cobra.Command{Use: use + " list REPOSITORY-UUID", Short: short, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			if a[0] != "list" {
				return usageError{fmt.Errorf("unknown %s command %q (want list)", use, a[0])}
			}
			var items []map[string]any
			if err := g.call(method, &items, a[1]); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(items))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tMEM(MiB)\tVCPUS\tPATH\tERROR")
			for _, t := range items {
				fmt.Fprintf(tw, "%v\t%s\t%v\t%v\t%v\t%v\n", t["name"], sizeText(int64(num(t["size"]))), orDash(t["memory"]), orDash(t["vcpus"]), t["path"], orDash(t["error"]))
			}
			return tw.Flush()
		}}
}

// repoSecondaryCommand is `ovm repo secondary`: the file systems a
// manager mounted beside the repositories (agent 3's storage_plugin_mount
// at /nfsmnt/<name>).
func repoSecondaryCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "secondary", Short: "List the file systems a manager mounted in [agent] secondary_storage_dir (CloudStack's secondary storage)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var items []map[string]any
			if err := g.call("repository.secondary_list", &items); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), nonNil(items))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMOUNT POINT\tSOURCE\tTYPE\tSIZE\tFREE\tOPTIONS")
			for _, m := range items {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%s\t%s\t%v\n", m["name"], m["mount_point"], m["source"], m["fs_type"],
					sizeText(int64(num(m["size"]))), sizeText(int64(num(m["free"]))), m["options"])
			}
			return tw.Flush()
		}}
}
