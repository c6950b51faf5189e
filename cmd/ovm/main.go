// Command ovm is the operator's command line for ovs-agent, in the spirit of
// xm: it calls the agent's XML-RPC API, by default on the local unix socket.
//
// Exit codes: 0 success; 1 the agent answered with a fault (or a migration
// or a dry run failed); 2 bad usage; 3 the agent could not be reached; 4 the
// agent refused the caller (password or allow/deny rules). outputHelp says
// what -o json prints, and how a failure looks then.
//
// It is flags, wiring and printing only: each command is one function
// (structCommand for those that call one method with their arguments and
// print the struct it returns), in the file of its namespace (domains.go,
// migrate.go, detach.go, repo.go, pool.go); the agent does the work. Every
// size, rate and duration is printed by the helpers in print.go; a
// migration's progress by progress.go (an mpb bar on a terminal, plain
// lines otherwise); each command's example is in examples.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const (
	exitOK      = 0
	exitFault   = 1
	exitUsage   = 2
	exitConn    = 3
	exitRefused = 4
)

type globals struct {
	url          string
	user         string
	passwordFile string
	caFile       string
	insecure     bool
	output       string
	timeout      time.Duration
	// tty decides whether ovm may draw on w (a progress bar, top's screen
	// clearing); nil: isTerminal. Tests set it.
	tty func(w io.Writer) bool
}

// json says whether -o json was given.
func (g *globals) json() bool { return g.output == "json" }

func (g *globals) isTerminal(w io.Writer) bool {
	if g.tty != nil {
		return g.tty(w)
	}
	return isTerminal(w)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(&globals{}, args, stdin, stdout, stderr)
}

// runWith is run with g's tty decision (tests set it).
func runWith(g *globals, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(g, stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	return report(stderr, err, g.json() || outputArg(args) == "json")
}

// outputArg is the last -o/--output value in args, for the errors cobra
// finds before it parses the flags (an unknown command).
func outputArg(args []string) string {
	out := ""
	for i, a := range args {
		switch {
		case a == "--":
			return out
		case (a == "-o" || a == "--output") && i+1 < len(args):
			out = args[i+1]
		case strings.HasPrefix(a, "--output="):
			out = strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--") && len(a) > 2:
			out = strings.TrimPrefix(strings.TrimPrefix(a, "-o"), "=")
		}
	}
	return out
}

// newRoot is the ovm command with all its subcommands, their examples set.
func newRoot(g *globals, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ovm",
		Short: "Manage an ovs-agent host: domains, migration, repositories",
		Long: `ovm talks to an ovs-agent over its XML-RPC API.

By default it uses the local unix socket (` + client.DefaultSocket + `), where
root needs no password. To reach another agent, or an agent started with
'make run', give --url (or OVM_URL):
  ovm --url unix://./.run/agent.sock host-info
  ovm --url https://server1:8899 --user admin --password-file ~/.ovm-pass host-info

` + outputHelp,
		Example:       "  ovm list\n  ovm -o json info web1\n  ovm --url https://server1:8899 --password-file ~/.ovm-pass host-info",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return usageError{fmt.Errorf("-o %q: want text or json", g.output)}
			}
			if why := textOnly(cmd); g.json() && why != "" {
				return usageError{fmt.Errorf("%s: no -o json: %s", cmd.CommandPath(), why)}
			}
			return nil
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", os.Getenv("OVM_URL"), "agent URL: https://HOST:8899, http://HOST:PORT or unix:///PATH (env OVM_URL)")
	pf.StringVar(&g.user, "user", envOr("OVM_USER", "admin"), "API user for TCP connections (env OVM_USER)")
	pf.StringVar(&g.passwordFile, "password-file", os.Getenv("OVM_PASSWORD_FILE"), "file whose first line is the API password (env OVM_PASSWORD_FILE)")
	pf.StringVar(&g.caFile, "cacert", os.Getenv("OVM_CACERT"), "CA certificate that signed the agent's certificate (env OVM_CACERT)")
	pf.BoolVar(&g.insecure, "insecure", false, "do not verify the agent's TLS certificate (self-signed agents)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json (see ovm --help)")
	pf.DurationVar(&g.timeout, "timeout", 60*time.Second, "give up on a call after this long")

	root.AddCommand(
		versionCommand(g),
		simpleCall(g, "host-info", "Show the host: CPUs, memory, kernel, KVM, agent", "host.info", printHostInfo),
		simpleCall(g, "host-stats", "Show the host's current load, CPU use and memory", "host.stats", printStruct),
		simpleCall(g, "status", "Show what the agent serves and who you are to it", "agent.status", printStruct),
		callCommand(g),
	)
	root.AddCommand(domainCommands(g)...)
	root.AddCommand(migrateCommands(g)...)
	root.AddCommand(detachCommands(g)...)
	root.AddCommand(repoCommands(g)...)
	root.AddCommand(poolCommands(g)...)
	root.AddCommand(genManCmd(root))
	// cobra's help and completion commands, made now (Execute would make
	// them) so that they get their examples; a completion command added
	// above is kept.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	setExamples(root)
	return root
}

// textOnlyKey is the annotation of a command whose output is no data
// (a shell script, a manual page): its value says what it writes, and -o
// json is a usage error there rather than accepted and ignored.
const textOnlyKey = "ovm.text-only"

// textOnly says why cmd offers no -o json ("": it does): annotated, a
// hidden (internal) command, or cobra's help and completion.
func textOnly(cmd *cobra.Command) string {
	for c := cmd; c != nil; c = c.Parent() {
		if why := c.Annotations[textOnlyKey]; why != "" {
			return why
		}
		if c.Hidden {
			return "it is one of ovm's hidden, internal commands"
		}
		if c.HasParent() && !c.Parent().HasParent() { // cobra's own
			switch c.Name() {
			case "completion":
				return "it writes a shell completion script"
			case "help":
				return "it prints the help text"
			}
		}
	}
	return ""
}

// outputHelp is the root help's word on -o json and on faults.
const outputHelp = `Output: -o text (the default) prints for people; -o json prints for
scripts: one JSON document on standard output per command (the API's
answer, as returned), or, for the commands that refresh or follow (top,
console), one compact JSON document per line (JSON lines); the commands
that write no data (help, completion) refuse -o json. migrate prints
the last migration.status as its document; its progress bar goes to
standard error when that is a terminal. A command that fails exits with
the code below, prints nothing more on standard output and, with -o json,
one JSON line on standard error instead of the sentence: an object
{"error": {...}} whose members are message, kind (fault, usage,
connection or refused), exit_code, fault_code (for a fault) and hint
(when ovm has one).

Exit codes: 0 success; 1 the agent answered with a fault (or a migration or
a dry run failed); 2 bad usage; 3 the agent could not be reached; 4 the
agent refused the caller (password or allow/deny rules).`

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type usageError struct{ error }

// report prints err the way a person can act on it (with -o json, as one
// JSON line: outputHelp) and picks the exit code.
func report(w io.Writer, err error, asJSON bool) int {
	var f *client.Fault
	code, kind, hint := exitFault, "fault", ""
	switch {
	case errors.As(err, &f):
	case errors.As(err, new(*dryRunFailed)):
	case client.IsConn(err):
		code, kind, hint = exitConn, "connection", client.Hint(err)
	case client.IsAuth(err):
		code, kind, hint = exitRefused, "refused", client.Hint(err)
	case errors.As(err, new(usageError)), isCobraUsage(err):
		code, kind, hint = exitUsage, "usage", client.Hint(err)
	default:
		hint = client.Hint(err)
	}
	if asJSON {
		e := map[string]any{"message": err.Error(), "kind": kind, "exit_code": code}
		if f != nil {
			e["message"], e["fault_code"] = f.Message, f.Code
		}
		if hint != "" {
			e["hint"] = hint
		}
		b, _ := json.Marshal(map[string]any{"error": e})
		fmt.Fprintf(w, "%s\n", b)
		return code
	}
	if f != nil {
		fmt.Fprintf(w, "ovm: %s (fault %d)\n", f.Message, f.Code)
		return code
	}
	fmt.Fprintf(w, "ovm: %v\n", err)
	if hint != "" {
		fmt.Fprintf(w, "ovm: hint: %s\n", hint)
	}
	return code
}

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.Contains(s, "flag needs an argument") ||
		strings.HasPrefix(s, "accepts ") || strings.HasPrefix(s, "requires at least") || strings.HasPrefix(s, "invalid argument")
}

func (g *globals) connect() (*client.Client, error) {
	o := client.Options{URL: g.url, User: g.user, CAFile: g.caFile, Insecure: g.insecure, Timeout: g.timeout}
	if g.passwordFile != "" {
		pw, err := passwordfile.Read(g.passwordFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("password file: %w", err)}
		}
		o.Password = pw
	} else if p := os.Getenv("OVM_PASSWORD"); p != "" {
		o.Password = p
	}
	c, err := client.New(o)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (g *globals) call(method string, reply any, args ...any) error {
	c, err := g.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	return c.Call(ctx, method, reply, args...)
}

// simpleCall is a command that calls one method without arguments and prints
// the struct it returns.
func simpleCall(g *globals, use, short, method string, print func(io.Writer, map[string]any)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: g.structRun(method, print)}
}

// structCommand is a command that calls method with its nargs arguments
// and prints the struct it returns.
func structCommand(g *globals, use, short string, nargs int, method string, print func(io.Writer, map[string]any)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: g.structRun(method, print)}
}

// structRun calls method with the command's arguments and prints the
// struct it returns, as JSON or with print.
func (g *globals) structRun(method string, print func(io.Writer, map[string]any)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		params := make([]any, len(args))
		for i, a := range args {
			params[i] = a
		}
		var out map[string]any
		if err := g.call(method, &out, params...); err != nil {
			return err
		}
		return g.show(cmd.OutOrStdout(), out, print)
	}
}

// writeJSON writes v as one indented JSON document: what a command that
// prints once prints with -o json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONLine writes v as one compact JSON document on one line: what
// the commands that refresh or follow print with -o json, once each time.
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// versionCommand is `ovm version`: ovm's version and the agent's.
func versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Show the versions of ovm and of the agent", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var agent map[string]any
			if err := g.call("agent.version", &agent); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"ovm": version, "agent": agent})
			}
			printVersion(cmd.OutOrStdout(), agent)
			return nil
		}}
}

// callCommand is `ovm call METHOD [ARG...]`, for any method of the API.
func callCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "call METHOD [ARG...]",
		Short: "Call any API method; each ARG is JSON (42, true, \"s\", [..], {..}) or else a plain string",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params := make([]any, 0, len(args)-1)
			for _, a := range args[1:] {
				params = append(params, parseArg(a))
			}
			var out any
			if err := g.call(args[0], &out, params...); err != nil {
				return err
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			printValue(cmd.OutOrStdout(), "", out)
			return nil
		},
	}
}

// parseArg reads a JSON literal; anything that is not JSON is a string.
// Whole numbers become integers.
func parseArg(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return s
	}
	return fromJSON(v)
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
		return x
	}
	return v
}
