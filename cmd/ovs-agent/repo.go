package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/repository"
)

// repoCmd is `ovs-agent repo ...`, what ovs-makerepo, ovs-offlinerepo and
// ovsrepositories call. It works on the files and mounts directly; a
// running agent's watcher sees the file changes, and both serialise on the
// repository state file's lock.
func repoCmd() *cobra.Command {
	var cfgPath, options string
	var del bool
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Manage storage repositories (what ovs-makerepo, ovs-offlinerepo and ovsrepositories call)",
	}
	cmd.PersistentFlags().StringVar(&cfgPath, "config", defaultConfig(), "agent configuration file")
	run := func(f func(ctx context.Context, c repository.Commands, cmd *cobra.Command, args []string) int) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return &exitError{code: repository.ExitUsage, msg: err.Error()}
			}
			m, err := repository.NewManager(agent.RepositoryOptions(cfg))
			if err != nil {
				return &exitError{code: repository.ExitFailed, msg: err.Error()}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if code := f(ctx, repository.Commands{Ctl: m}, cmd, args); code != 0 {
				return &exitError{code: code}
			}
			return nil
		}
	}
	make_ := &cobra.Command{Use: "make [-o OPTIONS] -- SOURCE SHARED DESCRIPTION", Short: "Make SOURCE a repository, add it to the files, mount it, print its UUID (ovs-makerepo)",
		Args: cobra.ExactArgs(3),
		RunE: run(func(ctx context.Context, c repository.Commands, cmd *cobra.Command, a []string) int {
			return c.Make(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), a[0], a[1], a[2], options)
		})}
	make_.Flags().StringVarP(&options, "options", "o", "", "mount options (as mount -o)")
	add := &cobra.Command{Use: "add [-o OPTIONS] SOURCE", Short: "Add an existing repository and mount it", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c repository.Commands, cmd *cobra.Command, a []string) int {
			return c.Add(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), a[0], options)
		})}
	add.Flags().StringVarP(&options, "options", "o", "", "mount options (as mount -o)")
	offline := &cobra.Command{Use: "offline [-d] -- UUID SOURCE", Short: "Unmount a repository; -d also removes its entries (ovs-offlinerepo)", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, c repository.Commands, cmd *cobra.Command, a []string) int {
			return c.Offline(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), a[0], a[1], del)
		})}
	offline.Flags().BoolVarP(&del, "delete", "d", false, "also remove the repository's entries from the files")
	simple := func(use, short string, f func(repository.Commands, context.Context, *cobra.Command, []string) int) *cobra.Command {
		return &cobra.Command{Use: use, Short: short,
			RunE: run(func(ctx context.Context, c repository.Commands, cmd *cobra.Command, a []string) int {
				return f(c, ctx, cmd, a)
			})}
	}
	cmd.AddCommand(make_, add, offline,
		simple("remove UUID", "Unmount a repository and remove its entries", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, a []string) int {
			if len(a) != 1 {
				return repository.ExitUsage
			}
			return c.Remove(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), a[0])
		}),
		simple("list", "List the repositories", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, _ []string) int {
			return c.List(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
		simple("status [UUID...]", "Show the repositories' state (exit 0: all as configured, 3: stopped)", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, a []string) int {
			return c.Status(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), a...)
		}),
		simple("start", "Mount every configured repository", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, _ []string) int {
			return c.Start(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
		simple("stop", "Unmount every repository no running domain uses", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, _ []string) int {
			return c.Stop(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
		simple("restart", "Stop, then start", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, _ []string) int {
			return c.Restart(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
		simple("reload", "Apply the files' changes now", func(c repository.Commands, ctx context.Context, cmd *cobra.Command, _ []string) int {
			return c.Reload(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	)
	return cmd
}
