package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every ovm command shows an example in its help (the hidden, internal
// ones are in no help), and every example names a command.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRoot(&globals{}, nil, io.Discard, io.Discard)
	for _, p := range missingExamples(root) {
		t.Error(p)
	}
	// The help shows it.
	var out bytes.Buffer
	if code := run([]string{"repo", "add", "--help"}, strings.NewReader(""), &out, io.Discard); code != 0 ||
		!strings.Contains(out.String(), "Examples:\n  ovm repo add /dev/sdb1\n") {
		t.Errorf("ovm repo add --help (exit %d):\n%s", code, out.String())
	}
}

// Each example's first word after ovm (and its global flags) is the
// command it belongs to, so that none is pasted under the wrong one.
func TestExamplesNameTheirCommand(t *testing.T) {
	root := newRoot(&globals{}, nil, io.Discard, io.Discard)
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, line := range strings.Split(strings.TrimSpace(c.Example), "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue // none: TestEveryCommandHasAnExample
			}
			if strings.Contains(line, "|") && !strings.HasPrefix(line, "ovm") { // echo x | ovm console
				line = strings.TrimSpace(line[strings.Index(line, "|")+1:])
			}
			if got := dropGlobals(line) + " "; !strings.HasPrefix(got, c.CommandPath()+" ") {
				t.Errorf("%s: example %q does not run it", c.CommandPath(), line)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// dropGlobals removes ovm's global flags (and their values) after "ovm".
func dropGlobals(line string) string {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ovm" {
		return line
	}
	out := []string{"ovm"}
	for i := 1; i < len(f); i++ {
		switch f[i] {
		case "-o", "--url", "--password-file", "--user", "--cacert", "--timeout":
			i++
		case "--insecure":
		default:
			out = append(out, f[i:]...)
			return strings.Join(out, " ")
		}
	}
	return strings.Join(out, " ")
}

// missingExamples names the commands under root without an example and
// the entries of examples that name no command.
func missingExamples(root *cobra.Command) []string {
	var bad []string
	seen := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		seen[c.CommandPath()] = true
		if strings.TrimSpace(c.Example) == "" && !c.Hidden { // a hidden command is in no help
			bad = append(bad, c.CommandPath()+": no example (add one to examples in examples.go)")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for p := range examples {
		if !seen[p] {
			bad = append(bad, fmt.Sprintf("examples[%q]: no such command", p))
		}
	}
	return bad
}
