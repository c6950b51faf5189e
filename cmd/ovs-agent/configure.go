package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent"
	"github.com/ovs-agent/ovs-agent/agent/access"
	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
)

// accessHelp is printed before the questions, word for word as the Oracle VM
// guide shows it.
const accessHelp = `;network access control by ip --
 ;rules := if addr.match(allow) and not addr.match(deny): return True
;pattern items delimited by comma and could be
;10.1.1.1   #single ip
;10.1.1.*    #range
;10.1.1.1/24 #range
;default to allow all, deny none
`

func configureCmd() *cobra.Command {
	var cfgPath, allow, deny, passwordFile string
	var noPassword bool
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Set the allowed and denied addresses and the API password (the Oracle VM Agent dialog)",
		Long: `Ask the Oracle VM Agent configuration questions and rewrite agent.ini,
keeping its comments and layout:

  allowed IP addresses   (comma-separated: 10.1.1.1, 10.1.1.*, 10.1.1.0/24, *.example.com, *)
  denied IP addresses
  would you like to modify password to communicate with agent?[y/N]

Press Enter to keep the value shown; answer - for an empty list. The file is
written only if the result is valid. Reload the agent afterwards
(service ovs-agent reload, or systemctl reload ovs-agent).

With --allow, --deny, --password-file or --no-password nothing is asked:
options not given keep their values.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cur, err := config.Load(cfgPath)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if cur == nil {
				cur = config.Default()
			}
			f := cmd.Flags()
			var changes []config.Change
			if f.Changed("allow") || f.Changed("deny") || f.Changed("password-file") || noPassword {
				changes, err = flagChanges(cmd, allow, deny, passwordFile)
			} else {
				changes, err = dialog(newPrompter(cmd.InOrStdin(), cmd.OutOrStdout()), cmd.OutOrStdout(), cur)
			}
			if err != nil {
				return err
			}
			next, err := config.EditFile(cfgPath, changes)
			if err != nil {
				return err
			}
			if err := agent.CheckConfig(next); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s updated; reload the agent for the changes to take effect (service ovs-agent reload)\n", cfgPath)
			return nil
		},
	}
	configFlag(cmd, &cfgPath)
	cmd.Flags().StringVar(&allow, "allow", "", "allowed addresses, comma-separated (non-interactive)")
	cmd.Flags().StringVar(&deny, "deny", "", "denied addresses, comma-separated (non-interactive)")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "set the API password to the first line of this file (non-interactive)")
	cmd.Flags().BoolVar(&noPassword, "no-password", false, "do not change the password (non-interactive)")
	return cmd
}

// normalizeList checks an allow/deny answer and gives its canonical form.
func normalizeList(s string) (string, error) {
	l, err := access.Parse(s)
	if err != nil {
		return "", err
	}
	return l.String(), nil
}

func flagChanges(cmd *cobra.Command, allow, deny, passwordFile string) ([]config.Change, error) {
	var changes []config.Change
	f := cmd.Flags()
	for _, o := range []struct {
		flag, key, val string
	}{{"allow", "allow", allow}, {"deny", "deny", deny}} {
		if !f.Changed(o.flag) {
			continue
		}
		v, err := normalizeList(o.val)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", o.flag, err)
		}
		changes = append(changes, config.Change{Section: "access", Key: o.key, Value: v})
	}
	if passwordFile != "" {
		pw, err := passwordfile.Read(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		h, err := auth.Hash(pw)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %w", err)
		}
		changes = append(changes, config.Change{Section: "auth", Key: "password_hash", Value: h})
	}
	return changes, nil
}

// dialog asks the guide's three questions.
func dialog(p *prompter, out io.Writer, cur *config.Config) ([]config.Change, error) {
	fmt.Fprint(out, accessHelp)
	var changes []config.Change
	for _, key := range []string{"allow", "deny"} {
		val := strings.Join(cur.Access.Allow, ",")
		if key == "deny" {
			val = strings.Join(cur.Access.Deny, ",")
		}
		fmt.Fprintf(out, "%s=%s\n", key, val)
		for tries := 0; ; tries++ {
			ans, err := p.ask(key + "=")
			if err != nil {
				return nil, err
			}
			ans = strings.TrimSpace(ans)
			switch ans {
			case "":
				// Enter keeps the value shown.
			case "-":
				val = ""
			default:
				v, err := normalizeList(ans)
				if err != nil {
					fmt.Fprintf(out, "%v; try again\n", err)
					if tries >= 2 {
						return nil, fmt.Errorf("%s: %w", key, err)
					}
					continue
				}
				val = v
			}
			break
		}
		fmt.Fprintf(out, "now %s=%s\n", key, val)
		changes = append(changes, config.Change{Section: "access", Key: key, Value: val})
	}
	ans, err := p.ask("would you like to modify password to communicate with agent?[y/N]")
	if err != nil {
		return nil, err
	}
	if a := strings.ToLower(strings.TrimSpace(ans)); a == "y" || a == "yes" {
		pw, err := p.newPassword()
		if err != nil {
			return nil, err
		}
		h, err := auth.Hash(pw)
		if err != nil {
			return nil, err
		}
		changes = append(changes, config.Change{Section: "auth", Key: "password_hash", Value: h})
		fmt.Fprintln(out, "password changed")
	}
	return changes, nil
}
