package manpage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ConfigPage is the reference page of an INI configuration file, rendered
// from an annotated example of it, such as config/agent.ini.example: the
// comment lines before the first section are the description; in each
// [section], a comment block that a blank line separates from the next
// option is the section's introduction, and the comment block right above
// an option (or a run of options, as ssl_cert and ssl_key) is its
// documentation, the option's line its default. Comment lines indented by
// two blanks or more (lists, examples) are shown as they are.
type ConfigPage struct {
	Name    string // the file's name, "agent.ini"
	Short   string // the NAME line's description
	Example []byte // the annotated example
	Header  Header
	Extra   []Section // after the options: FILES, ...
	SeeAlso []string
}

// option is one option line of the example, or a run of them.
type option struct {
	lines []string // "key = value"
	doc   []string
}

type iniSection struct {
	name    string
	intro   []string
	options []*option
}

// parseExample reads the example's structure. It is strict: a line that is
// neither a comment, a section, an option nor blank is an error naming its
// line, so that a page never silently drops part of the example.
func parseExample(name string, data []byte) (preamble []string, sections []*iniSection, err error) {
	var pending []string // comment lines since the last blank line or option
	var cur *iniSection
	lastWasOption := false
	flushText := func() {
		if len(pending) == 0 {
			return
		}
		if cur == nil {
			preamble = append(preamble, pending...)
			preamble = append(preamble, "")
		} else {
			cur.intro = append(cur.intro, pending...)
			cur.intro = append(cur.intro, "")
		}
		pending = nil
	}
	for i, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimRight(raw, " \t\r")
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			flushText()
			lastWasOption = false
		case t[0] == ';' || t[0] == '#':
			c := t[1:]
			c = strings.TrimPrefix(c, " ")
			pending = append(pending, c)
			lastWasOption = false
		case t[0] == '[':
			if !strings.HasSuffix(t, "]") {
				return nil, nil, fmt.Errorf("%s:%d: a section line must end with ]", name, i+1)
			}
			flushText()
			cur = &iniSection{name: t}
			sections = append(sections, cur)
			lastWasOption = false
		default:
			k, v, ok := strings.Cut(t, "=")
			if !ok || cur == nil {
				return nil, nil, fmt.Errorf("%s:%d: neither a comment, a section nor an option in a section: %q", name, i+1, t)
			}
			line := strings.TrimSpace(k) + " = " + strings.TrimSpace(v)
			if lastWasOption && len(pending) == 0 {
				o := cur.options[len(cur.options)-1]
				o.lines = append(o.lines, line)
			} else {
				cur.options = append(cur.options, &option{lines: []string{line}, doc: pending})
			}
			pending = nil
			lastWasOption = true
		}
	}
	flushText()
	return preamble, sections, nil
}

// Render writes the page.
func (p ConfigPage) Render() ([]byte, error) {
	preamble, sections, err := parseExample(p.Name, p.Example)
	if err != nil {
		return nil, err
	}
	th, err := titleLine(p.Name, p.Header)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(th)
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\n" + escape(p.Name) + ` \- ` + escape(p.Short) + "\n")
	b.WriteString(".SH DESCRIPTION\n")
	writeText(&b, strings.Join(preamble, "\n"), ".PP")
	b.WriteString(".SH OPTIONS\n")
	for _, s := range sections {
		b.WriteString(".SS " + escape(s.name) + "\n")
		writeText(&b, strings.Join(s.intro, "\n"), ".PP")
		for _, o := range s.options {
			b.WriteString(".TP\n")
			for i, l := range o.lines {
				if i > 0 {
					b.WriteString(".TQ\n")
				}
				k, v, _ := strings.Cut(l, " = ")
				val := escape(v)
				if v == "" {
					val = `\fI(empty)\fP`
				}
				b.WriteString(`\fB` + escape(k) + `\fP = ` + val + "\n")
			}
			writeText(&b, strings.Join(o.doc, "\n"), ".IP")
		}
	}
	for _, s := range p.Extra {
		b.WriteString(s.roff())
	}
	if len(p.SeeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n" + seeAlsoRoff(p.SeeAlso))
	}
	return []byte(b.String()), nil
}

// Write writes the page into dir as NAME.SECTION and returns that name.
func (p ConfigPage) Write(dir string) (string, error) {
	page, err := p.Render()
	if err != nil {
		return "", err
	}
	name := p.Name + "." + p.Header.Section
	return name, os.WriteFile(filepath.Join(dir, name), page, 0o644)
}
