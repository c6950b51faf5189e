// Command ovm is the operator's command line for ovs-agent, in the spirit of
// xm: it calls the agent's XML-RPC API, by default on the local unix socket.
//
// Exit codes: 0 success; 1 the agent answered with a fault; 2 bad usage;
// 3 the agent could not be reached; 4 the agent refused the caller (password
// or allow/deny rules).
//
// It is flags, wiring and printing only: each command is one function
// (structCommand for those that call one method with their arguments and
// print the struct it returns), in the file of its namespace (domains.go,
// migrate.go, detach.go, repo.go, pool.go); the agent does the work.
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
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{}
	root := &cobra.Command{
		Use:   "ovm",
		Short: "Manage an ovs-agent host: domains, migration, repositories",
		Long: `ovm talks to an ovs-agent over its XML-RPC API.

By default it uses the local unix socket (` + client.DefaultSocket + `), where
root needs no password. To reach another agent, or an agent started with
'make run', give --url (or OVM_URL):
  ovm --url unix://./.run/agent.sock host-info
  ovm --url https://server1:8899 --user admin --password-file ~/.ovm-pass host-info`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", os.Getenv("OVM_URL"), "agent URL: https://HOST:8899, http://HOST:PORT or unix:///PATH (env OVM_URL)")
	pf.StringVar(&g.user, "user", envOr("OVM_USER", "admin"), "API user for TCP connections (env OVM_USER)")
	pf.StringVar(&g.passwordFile, "password-file", os.Getenv("OVM_PASSWORD_FILE"), "file whose first line is the API password (env OVM_PASSWORD_FILE)")
	pf.StringVar(&g.caFile, "cacert", os.Getenv("OVM_CACERT"), "CA certificate that signed the agent's certificate (env OVM_CACERT)")
	pf.BoolVar(&g.insecure, "insecure", false, "do not verify the agent's TLS certificate (self-signed agents)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&g.timeout, "timeout", 60*time.Second, "give up on a call after this long")

	root.AddCommand(
		simpleCall(g, "version", "Show the versions of ovm and of the agent", "agent.version", printVersion),
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

	err := root.Execute()
	if err == nil {
		return exitOK
	}
	return report(stderr, err)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type usageError struct{ error }

// report prints err the way a person can act on it and picks the exit code.
func report(w io.Writer, err error) int {
	var f *client.Fault
	code := exitFault
	switch {
	case errors.As(err, &f):
		fmt.Fprintf(w, "ovm: %s (fault %d)\n", f.Message, f.Code)
		return exitFault
	case errors.As(err, new(*dryRunFailed)):
		fmt.Fprintf(w, "ovm: %v\n", err)
		return exitFault
	case client.IsConn(err):
		code = exitConn
	case client.IsAuth(err):
		code = exitRefused
	case errors.As(err, new(usageError)), isCobraUsage(err):
		code = exitUsage
	}
	fmt.Fprintf(w, "ovm: %v\n", err)
	if h := client.Hint(err); h != "" {
		fmt.Fprintf(w, "ovm: hint: %s\n", h)
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
	if g.output != "text" && g.output != "json" {
		return nil, usageError{fmt.Errorf("-o %q: want text or json", g.output)}
	}
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
			if g.output == "json" {
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
