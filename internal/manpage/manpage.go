package manpage

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Header is what the title line of every page says.
type Header struct {
	Section string    // manual section: "1", "5", "8"
	Source  string    // the product and version, e.g. "ovs-agent 1.2"
	Manual  string    // the manual's name, e.g. "ovs-agent manual"
	Date    time.Time // zero: SOURCE_DATE_EPOCH when set, else now
}

// date is h.Date, or the build date make deb sets.
func (h Header) date() (time.Time, error) {
	if !h.Date.IsZero() {
		return h.Date, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}

// Section is a section a command's page adds to what cobra writes: a
// title, plain-text paragraphs (separated by blank lines; lines indented by
// two blanks or more are shown as they are) and then a list of tagged
// items (an exit code and what it means, a file and what it holds).
type Section struct {
	Title string
	Text  string
	Items []Item
}

// Item is one tagged paragraph of a Section.
type Item struct {
	Tag  string
	Text string
}

// Tree is a command tree's pages.
type Tree struct {
	Root   *cobra.Command
	Header Header
	// Extra sections go into the root command's page, before SEE ALSO.
	Extra []Section
	// SeeAlso names other pages, "agent.ini(5)", for the root page's SEE
	// ALSO, after the pages of its subcommands.
	SeeAlso []string
}

// Write writes a page for the root and each available (not hidden, not
// deprecated) command under it into dir and returns the files' names, the
// root's first. Cobra's default help and completion commands get pages
// too, as they are part of the program.
func (t Tree) Write(dir string) ([]string, error) {
	d, err := t.Header.date()
	if err != nil {
		return nil, err
	}
	t.Root.InitDefaultHelpCmd()
	t.Root.InitDefaultCompletionCmd()
	var names []string
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != t.Root {
			return nil
		}
		c.DisableAutoGenTag = true
		long := c.Long
		c.Long = literalBlocks(long)
		defer func() { c.Long = long }()
		var buf bytes.Buffer
		h := &doc.GenManHeader{
			Title:   strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-")),
			Section: t.Header.Section,
			Date:    &d,
			Source:  t.Header.Source,
			Manual:  t.Header.Manual,
		}
		if err := doc.GenMan(c, h, &buf); err != nil {
			return fmt.Errorf("man page of %q: %w", c.CommandPath(), err)
		}
		page := buf.Bytes()
		if c == t.Root {
			page = splice(page, t.Extra, t.SeeAlso)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + "." + t.Header.Section
		if err := os.WriteFile(filepath.Join(dir, name), page, 0o644); err != nil {
			return err
		}
		names = append(names, name)
		subs := c.Commands()
		sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
		for _, s := range subs {
			if err := walk(s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(t.Root); err != nil {
		return nil, err
	}
	return names, nil
}

// literalBlocks makes the lines of a command's help text that are
// indented by two blanks or more (examples, the questions of a dialog),
// which a terminal shows as they are, markdown code blocks, so that cobra's
// markdown-to-roff keeps them as they are instead of filling them into the
// paragraph.
func literalBlocks(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	in := false
	for _, l := range lines {
		indented := strings.HasPrefix(l, "  ") && strings.TrimSpace(l) != ""
		switch {
		case indented && !in:
			if len(out) > 0 && out[len(out)-1] != "" {
				out = append(out, "")
			}
			in = true
		case !indented && in:
			if l != "" {
				out = append(out, "")
			}
			in = false
		}
		if indented {
			l = "    " + strings.TrimLeft(l, " ")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// splice puts the extra sections before SEE ALSO (at the end when there is
// none) and adds seeAlso to it.
func splice(page []byte, extra []Section, seeAlso []string) []byte {
	var add bytes.Buffer
	for _, s := range extra {
		add.WriteString(s.roff())
	}
	const mark = "\n.SH SEE ALSO\n"
	i := bytes.Index(page, []byte(mark))
	if i < 0 {
		out := append(bytes.TrimRight(page, "\n"), '\n')
		out = append(out, add.Bytes()...)
		if len(seeAlso) > 0 {
			out = append(out, ".SH SEE ALSO\n"...)
			out = append(out, seeAlsoRoff(seeAlso)...)
		}
		return out
	}
	var out bytes.Buffer
	out.Write(page[:i+1])
	out.Write(add.Bytes())
	rest := page[i+1:]
	// SEE ALSO is cobra's last section: one paragraph of references.
	out.Write(bytes.TrimRight(rest, "\n"))
	if len(seeAlso) > 0 {
		out.WriteString(", ")
		out.WriteString(strings.TrimSuffix(seeAlsoRoff(seeAlso), "\n"))
	}
	out.WriteString("\n")
	return out.Bytes()
}

// seeAlsoRoff is "\fBagent.ini(5)\fP, \fBovm(1)\fP".
func seeAlsoRoff(refs []string) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = `\fB` + escape(r) + `\fP`
	}
	return strings.Join(parts, ", ") + "\n"
}

// roff renders the section.
func (s Section) roff() string {
	var b strings.Builder
	b.WriteString(".SH " + escape(strings.ToUpper(s.Title)) + "\n")
	writeText(&b, s.Text, ".PP")
	for _, it := range s.Items {
		b.WriteString(".TP\n")
		b.WriteString(`\fB` + escape(it.Tag) + `\fP` + "\n")
		writeText(&b, it.Text, ".IP")
	}
	return b.String()
}

// writeText writes paragraphs: blank lines separate them (sep starts each
// one after the first: .PP in a section, .IP inside a tagged item); lines
// indented by two blanks or more are shown unfilled, as written.
func writeText(b *strings.Builder, text, sep string) {
	for i, p := range paragraphs(text) {
		if i > 0 {
			b.WriteString(sep + "\n")
		}
		literal := false
		for _, l := range p {
			indented := strings.HasPrefix(l, "  ")
			switch {
			case indented && !literal:
				b.WriteString(".RS\n.nf\n")
			case !indented && literal:
				b.WriteString(".fi\n.RE\n")
				if sep == ".IP" {
					// .RE leaves a tagged item's indent: take it up again.
					b.WriteString(".IP\n")
				}
			}
			literal = indented
			if indented {
				l = l[2:]
			}
			b.WriteString(escape(strings.TrimRight(l, " \t")) + "\n")
		}
		if literal {
			b.WriteString(".fi\n.RE\n")
		}
	}
}

// paragraphs splits text at blank lines.
func paragraphs(text string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		if !strings.HasPrefix(l, "  ") {
			l = strings.TrimLeft(l, " \t")
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// escape makes text safe as roff input: backslashes are printed, a line
// cannot start a request, and a hyphen prints as a hyphen.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// titleLine is the .TH line of a page written here.
func titleLine(name string, h Header) (string, error) {
	d, err := h.date()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(".TH %q %q %q %q %q\n", strings.ToUpper(name), h.Section, d.Format("Jan 2006"), h.Source, h.Manual), nil
}

// Warnings renders the page at path with groff as man(1) would (all
// warnings on, UTF-8 output thrown away) and returns what groff said,
// "" for a clean page. It needs groff (Debian's groff-base, which man-db
// depends on).
func Warnings(path string) (string, error) {
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		return "", fmt.Errorf("groff %s: %w", path, err)
	}
	return string(out), nil
}
