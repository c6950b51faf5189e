package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// completions lists the subcommands ovm offers to complete under path
// (cobra's __complete, what the bash and zsh completion scripts call),
// depth first, each as its command path.
func completions(t *testing.T, path ...string) []string {
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
		all = append(all, completions(t, sub...)...)
	}
	return all
}

// make deb's man pages: one for every command ovm completes, each naming
// its command and listed in its parent's SEE ALSO, groff silent on all;
// ovm.1 with the exit codes.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"gen-man", dir}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("gen-man: exit %d: %s", code, errb.String())
	}
	cmds := completions(t)
	if len(cmds) < 20 {
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
		page := read("ovm-" + strings.Join(words, "-") + ".1")
		if !strings.Contains(page, `\fBovm `+c) {
			t.Errorf("page of %q lacks its synopsis", c)
		}
		parent := strings.Join(append([]string{"ovm"}, words[:len(words)-1]...), "-")
		if pp := read(parent + ".1"); !strings.Contains(pp, parent+"-"+words[len(words)-1]+"(1)") {
			t.Errorf("%s.1 does not refer to %q", parent, c)
		}
	}
	root := read("ovm.1")
	for _, want := range []string{".SH EXIT STATUS\n", "\\fB3\\fP\nThe agent could not be reached", "\\fB4\\fP\nThe agent refused", ".SH ENVIRONMENT\n", "\\fBOVM_URL\\fP"} {
		if !strings.Contains(root, want) {
			t.Errorf("ovm.1 lacks %q", want)
		}
	}
}
