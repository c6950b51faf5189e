package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// detachCommands are detach and attach (zoneadm detach / attach).
func detachCommands(g *globals) []*cobra.Command {
	var repo string
	detach := &cobra.Command{
		Use:   "detach DOMAIN [--repo UUID]",
		Short: "Write a stopped domain's manifest into its folder so it can be moved and attached elsewhere",
		Long: `Detach a stopped domain: the agent writes ovs-detached.json (its vm.cfg, its
disks with sizes and checksums, what a host must offer) into the domain's folder
on its repository, and keeps the domain listed as detached, not runnable. Move
the folder by any means (a SAN, a copy) and run 'ovm attach FOLDER' on the
host that should run it. A domain without disks on a repository needs --repo:
its folder becomes running_pool/DOMAIN there.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out map[string]any
			callArgs := []any{args[0]}
			if repo != "" {
				callArgs = append(callArgs, repo)
			}
			if err := g.call("domain.detach", &out, callArgs...); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, func(w io.Writer, m map[string]any) {
				fmt.Fprintf(w, "detached %v: manifest %v (%v disks)\n", m["domain"], m["manifest"], m["disks"])
			})
		},
	}
	detach.Flags().StringVar(&repo, "repo", "", "repository UUID for the domain's folder (when no disk names one)")

	var force bool
	attach := &cobra.Command{
		Use:   "attach PATH [-F]",
		Short: "Validate a detach manifest (file or folder) against this host and register the domain",
		Long: `Attach a detached domain from its manifest: PATH is the folder holding
ovs-detached.json, or the file, on a repository mounted on the agent's host.
Every mismatch is printed on its own line (name or UUID taken, engine, memory,
bridges, a disk missing, resized or changed since the detach) and nothing is
registered. -F skips the checks of what the domain needs and of the disk
checksums (the agent logs it). On success the manifest is removed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if g.url == "" || strings.HasPrefix(g.url, "unix:") { // the agent shares this file system
				if abs, err := filepath.Abs(path); err == nil {
					path = abs
				}
			}
			var out map[string]any
			if err := g.call("domain.attach", &out, path, force); err != nil {
				return err
			}
			return g.show(cmd.OutOrStdout(), out, func(w io.Writer, m map[string]any) {
				fmt.Fprintf(w, "attached %v (%v): %v\n", m["name"], m["uuid"], m["state"])
			})
		},
	}
	attach.Flags().BoolVarP(&force, "force", "F", false, "skip validation of the domain's needs and the disk checksums")
	return []*cobra.Command{detach, attach}
}
