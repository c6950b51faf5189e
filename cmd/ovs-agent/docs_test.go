package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/config/ini"
	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// commands lists the subcommands the CLI offers to complete under path
// (cobra's __complete, what the bash and zsh completion scripts call), with
// the command path of each, depth first.
func commands(t *testing.T, path ...string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	args := append(append([]string{"__complete"}, path...), "")
	if code := run(args, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", path, code, errb.String())
	}
	var all []string
	for _, l := range strings.Split(out.String(), "\n") {
		name, _, _ := strings.Cut(l, "\t")
		if name == "" || strings.HasPrefix(name, ":") || strings.HasPrefix(name, "-") || name == "help" {
			continue // the directive, flags, and cobra's help (it has no page)
		}
		sub := append(append([]string{}, path...), name)
		all = append(all, strings.Join(sub, " "))
		all = append(all, commands(t, sub...)...)
	}
	return all
}

// make deb's man pages: one for every command the CLI completes, each
// naming its command and listed in its parent's SEE ALSO, groff silent on
// all; the first page with the exit codes; agent.ini(5) with every option
// of the example configuration.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"gen-man", dir}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("gen-man: exit %d: %s", code, errb.String())
	}
	cmds := commands(t)
	if len(cmds) < 10 {
		t.Fatalf("only %d commands complete: %v", len(cmds), cmds)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("no page %s: %v", name, err)
		}
		if w, err := manpage.Warnings(filepath.Join(dir, name)); err != nil || w != "" {
			t.Errorf("groff on %s: %v %s", name, err, w)
		}
		return string(b)
	}
	for _, c := range cmds {
		words := strings.Fields(c)
		page := read("ovs-agent-" + strings.Join(words, "-") + ".8")
		if !strings.Contains(page, `\fBovs-agent `+c) {
			t.Errorf("page of %q lacks its synopsis", c)
		}
		parent := strings.Join(append([]string{"ovs-agent"}, words[:len(words)-1]...), "-")
		if pp := read(parent + ".8"); !strings.Contains(pp, parent+"-"+words[len(words)-1]+"(8)") {
			t.Errorf("%s.8 does not refer to %q", parent, c)
		}
	}
	root := read("ovs-agent.8")
	for _, want := range []string{".SH EXIT STATUS\n", "\\fB3\\fP\nstatus: the agent is not running", ".SH FILES\n", "\\fB/etc/ovs\\-agent/agent.ini\\fP", "agent.ini(5)"} {
		if !strings.Contains(root, want) {
			t.Errorf("ovs-agent.8 lacks %q", want)
		}
	}
	ref := read("agent.ini.5")
	f, err := ini.Parse("agent.ini.example", config.ExampleINI)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range f.Sections() {
		at := strings.Index(ref, ".SS ["+s.Name+"]\n")
		if at < 0 {
			t.Errorf("agent.ini.5 lacks [%s]", s.Name)
			continue
		}
		sec := ref[at+1:]
		if end := strings.Index(sec, "\n.SS "); end >= 0 {
			sec = sec[:end]
		}
		for _, k := range f.Keys(s.Name) {
			n++
			v := strings.ReplaceAll(strings.ReplaceAll(k.Value, `\`, `\e`), "-", `\-`)
			if k.Value == "" {
				v = `\fI(empty)\fP`
			}
			if !strings.Contains(sec, "\\fB"+k.Name+"\\fP = "+v+"\n") {
				t.Errorf("agent.ini.5 lacks [%s] %s = %s", s.Name, k.Name, k.Value)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d options checked", n)
	}
}
