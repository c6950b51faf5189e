package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent/auth"
)

func hashPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Ask for a password (twice) and print the password_hash to put in agent.ini",
		Long: `Ask for a password and print its salted bcrypt hash for [auth] password_hash.
On a terminal the password is read without echo; from a pipe, the first two
lines are the password and its confirmation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := newPrompter(cmd.InOrStdin(), cmd.ErrOrStderr()).newPassword()
			if err != nil {
				return err
			}
			h, err := auth.Hash(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}
