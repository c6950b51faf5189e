package manpage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

var header = Header{Section: "5", Source: "test 1", Manual: "test manual", Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}

const example = `; demo configuration: /etc/demo.ini
;
; Every option, set to its default.

[server]
; The server part.

; Port to listen on. Default: 8899.
port = 8899

; Certificate and key, both or neither.
;   ssl_cert = /etc/demo/cert.pem
; Default: empty.
ssl_cert =
ssl_key =

[.odd]
name = .dot
`

func render(t *testing.T, p ConfigPage) string {
	t.Helper()
	dir := t.TempDir()
	name, err := p.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	w, err := Warnings(path)
	if err != nil {
		t.Fatal(err)
	}
	if w != "" {
		t.Errorf("groff warns about %s:\n%s", name, w)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The reference page has every option with its default and its comment,
// options that share a comment together, the example lines unfilled, and
// text that would be a roff request escaped.
func TestConfigPage(t *testing.T) {
	page := render(t, ConfigPage{Name: "demo.ini", Short: "demo configuration", Example: []byte(example), Header: header,
		Extra: []Section{{Title: "Files", Items: []Item{{Tag: "/etc/demo.ini", Text: "the file"}}}}, SeeAlso: []string{"demo(8)"}})
	for _, want := range []string{
		`.TH "DEMO.INI" "5" "Dec 2026" "test 1" "test manual"`,
		".SH NAME\ndemo.ini \\- demo configuration\n",
		".SH DESCRIPTION\ndemo configuration: /etc/demo.ini\n.PP\nEvery option, set to its default.\n",
		".SS [server]\nThe server part.\n",
		".TP\n\\fBport\\fP = 8899\nPort to listen on. Default: 8899.\n",
		".TP\n\\fBssl_cert\\fP = \\fI(empty)\\fP\n.TQ\n\\fBssl_key\\fP = \\fI(empty)\\fP\nCertificate and key, both or neither.\n.RS\n.nf\nssl_cert = /etc/demo/cert.pem\n.fi\n.RE\n.IP\nDefault: empty.\n",
		".SH FILES\n.TP\n\\fB/etc/demo.ini\\fP\nthe file\n",
		".SH SEE ALSO\n\\fBdemo(8)\\fP\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if !strings.Contains(page, ".SS [.odd]\n.TP\n\\fBname\\fP = \\&.dot\n") {
		t.Errorf("option name = .dot missing:\n%s", page)
	}
}

// A line the page could not place is an error naming it, never dropped.
func TestConfigPageRefusesUnknownLines(t *testing.T) {
	for _, bad := range []string{"[server]\nport 8899\n", "port = 1\n", "[server\n"} {
		_, err := ConfigPage{Name: "bad.ini", Example: []byte(bad), Header: header}.Render()
		if err == nil || !strings.HasPrefix(err.Error(), "bad.ini:") {
			t.Errorf("%q: want an error naming bad.ini and the line, got %v", bad, err)
		}
	}
}

// A tree has a page for each available command, none for hidden ones, and
// the root's page has the extra sections before SEE ALSO.
func TestTree(t *testing.T) {
	root := &cobra.Command{Use: "demo", Short: "A demo", Long: "A demo, for example:\n  demo start web1\n  demo start db1\nand so on."}
	sub := &cobra.Command{Use: "start NAME", Short: "Start NAME", Run: func(*cobra.Command, []string) {}}
	sub.AddCommand(&cobra.Command{Use: "now", Short: "At once", Run: func(*cobra.Command, []string) {}})
	root.AddCommand(sub, &cobra.Command{Use: "secret", Hidden: true, Run: func(*cobra.Command, []string) {}})
	dir := t.TempDir()
	h := header
	h.Section = "1"
	names, err := Tree{Root: root, Header: h, Extra: []Section{{Title: "Exit status", Text: "It ends.", Items: []Item{{Tag: "0", Text: "fine"}, {Tag: "1", Text: "not\n\n  literal\nend"}}}},
		SeeAlso: []string{"demo.ini(5)"}}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"demo.1", "demo-completion.1", "demo-completion-bash.1", "demo-completion-fish.1", "demo-completion-powershell.1", "demo-completion-zsh.1", "demo-start.1", "demo-start-now.1"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("pages %v, want %v", names, want)
	}
	for _, n := range names {
		w, err := Warnings(filepath.Join(dir, n))
		if err != nil || w != "" {
			t.Errorf("%s: %v %s", n, err, w)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "demo.1"))
	page := string(b)
	exit := strings.Index(page, ".SH EXIT STATUS\nIt ends.\n.TP\n\\fB0\\fP\nfine\n.TP\n\\fB1\\fP\nnot\n.IP\n.RS\n.nf\nliteral\n.fi\n.RE\n.IP\nend\n")
	see := strings.Index(page, ".SH SEE ALSO\n")
	if exit < 0 || see < exit {
		t.Errorf("exit status missing or after SEE ALSO:\n%s", page)
	}
	if !strings.Contains(page[see:], "demo-start(1)") || !strings.HasSuffix(page, `\fBdemo.ini(5)\fP`+"\n") {
		t.Errorf("SEE ALSO lacks the subcommand or the extra reference:\n%s", page[see:])
	}
	if !strings.Contains(page, "for example:\n\n.EX\ndemo start web1\ndemo start db1\n.EE\n") {
		t.Errorf("the indented lines of the help text are not kept as they are:\n%s", page)
	}
	if root.Long != "A demo, for example:\n  demo start web1\n  demo start db1\nand so on." {
		t.Errorf("the command's help text was changed: %q", root.Long)
	}
	if strings.Contains(page, "secret") {
		t.Errorf("the hidden command is on the page:\n%s", page)
	}
}
