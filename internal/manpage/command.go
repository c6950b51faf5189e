package manpage

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// GenCommand is a program's hidden `gen-man DIR` command (what make deb
// runs): write makes DIR's pages and returns their file names, which the
// command prints one a line.
func GenCommand(short string, write func(dir string) ([]string, error)) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  short,
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			names, err := write(args[0])
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
}
