package repository

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// Default locations of the configuration files (Oracle VM Server 2.x).
const (
	DefaultRepositoriesFile = "/etc/ovs/repositories"
	DefaultOptionsFile      = "/etc/ovs/repositories.options"
)

// Limits on the configuration files.
const (
	MaxConfigSize = 1 << 20 // bytes in either file
	MaxLineLen    = 8192    // bytes in one line
	MaxOptionsLen = 4096    // bytes of mount options
)

// Entry is one repository as configured: a good line of the repositories
// file, with its options from the options file.
type Entry struct {
	UUID        string // as written
	Source      Source
	Options     string // exactly as written in the options file; "" if none
	Line        int    // line in the repositories file
	OptionsLine int    // line in the options file; 0 if none
}

// Problem is a bad line in a configuration file. The line was skipped.
type Problem struct {
	File string
	Line int    // 0 when the problem is with the whole file
	UUID string // the UUID the line names, when it could be read
	Msg  string
}

func (p Problem) Error() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Config is what the two files say.
type Config struct {
	// Entries are the repositories to mount, in file order. A UUID in
	// Held is not among them.
	Entries []Entry
	// Held maps the canonical UUID (CanonicalUUID) of every repository
	// named on a bad line to the problem: the Manager changes nothing
	// about such a repository until the line is fixed, so a typo never
	// unmounts a working repository.
	Held map[string]string
	// Problems are the bad lines, in file order (repositories file first).
	Problems []Problem
}

// Lookup finds the entry for uuid (any spelling).
func (c *Config) Lookup(uuid string) (Entry, bool) {
	k := CanonicalUUID(uuid)
	for _, e := range c.Entries {
		if CanonicalUUID(e.UUID) == k {
			return e, true
		}
	}
	return Entry{}, false
}

// LoadConfig reads and parses both files. A missing file is an empty one.
// It fails only when a file cannot be read or is larger than
// MaxConfigSize; bad lines are Problems in the Config.
func LoadConfig(reposPath, optsPath string) (*Config, error) {
	repos, err := readConfigFile(reposPath)
	if err != nil {
		return nil, err
	}
	opts, err := readConfigFile(optsPath)
	if err != nil {
		return nil, err
	}
	return ParseConfig(reposPath, repos, optsPath, opts), nil
}

// readConfigFile reads one of the two repositories files, at most
// MaxConfigSize bytes; a missing file reads as empty.
func readConfigFile(path string) ([]byte, error) {
	data, err := boundedfile.ReadFile(path, MaxConfigSize, boundedfile.Follow)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// configLine is one line that is neither blank nor a comment.
type configLine struct {
	n    int
	text string // without surrounding blanks
	raw  string // without the line end only
}

// contentLines splits a file into its meaningful lines. Lines are
// separated by \n (a \r before it is dropped); a line whose first
// non-blank character is '#' is a comment.
func contentLines(data []byte) []configLine {
	var out []configLine
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		raw := strings.TrimSuffix(string(line), "\r")
		t := strings.Trim(raw, " \t\r")
		if t == "" || t[0] == '#' {
			continue
		}
		out = append(out, configLine{n, t, raw})
	}
	return out
}

// ParseConfig parses the repositories file (`uuid source` per line) and
// the options file (`uuid options` per line). Names are used in
// problems. Blank lines and lines starting with '#' are ignored.
//
// A bad line is a Problem and is skipped; the good lines still apply.
// A UUID given twice in one file is a problem on the second line, and
// the repository is held (see Config.Held). Options are kept exactly as
// written to the end of the line; they must be one mount -o argument
// (no blanks) and may not change what kind of mount is made (bind,
// remount, move, propagation flags).
func ParseConfig(reposName string, repos []byte, optsName string, opts []byte) *Config {
	p := &configParser{c: &Config{Held: map[string]string{}}, seen: map[string]int{}}
	if len(repos) > MaxConfigSize {
		p.problem(reposName, 0, "", "larger than %d bytes; ignored", MaxConfigSize)
		repos = nil
	}
	if len(opts) > MaxConfigSize {
		p.problem(optsName, 0, "", "larger than %d bytes; ignored", MaxConfigSize)
		opts = nil
	}
	p.repositories(reposName, repos)
	p.options(optsName, opts, reposName)
	for _, e := range p.entries {
		if _, held := p.c.Held[CanonicalUUID(e.UUID)]; !held {
			p.c.Entries = append(p.c.Entries, e)
		}
	}
	return p.c
}

// configParser is one ParseConfig.
type configParser struct {
	c       *Config
	entries []Entry        // the good lines of the repositories file, held ones included
	seen    map[string]int // canonical uuid -> its line in the repositories file
}

// problem records a bad line; a line that names a UUID holds it.
func (p *configParser) problem(file string, line int, uuid, format string, args ...any) {
	pr := Problem{File: file, Line: line, UUID: uuid, Msg: fmt.Sprintf(format, args...)}
	p.c.Problems = append(p.c.Problems, pr)
	if uuid != "" {
		k := CanonicalUUID(uuid)
		if _, held := p.c.Held[k]; !held {
			p.c.Held[k] = pr.Error()
		}
	}
}

// repositories parses the repositories file (`uuid source` per line).
func (p *configParser) repositories(name string, data []byte) {
	for _, l := range contentLines(data) {
		if len(l.text) > MaxLineLen {
			p.problem(name, l.n, "", "line is longer than %d bytes", MaxLineLen)
			continue
		}
		f := strings.Fields(l.text)
		uuid := f[0]
		if err := CheckUUID(uuid); err != nil {
			p.problem(name, l.n, "", "%v; want `uuid source`", err)
			continue
		}
		k := CanonicalUUID(uuid)
		if first, dup := p.seen[k]; dup {
			p.problem(name, l.n, uuid, "duplicate UUID %s (first on line %d); both lines are ignored until one is removed", uuid, first)
			continue
		}
		p.seen[k] = l.n
		if len(f) < 2 {
			p.problem(name, l.n, uuid, "no source after the UUID; want `uuid source`")
			continue
		}
		if len(f) > 2 {
			p.problem(name, l.n, uuid, "unexpected %q after the source; want `uuid source` (a source has no blanks, and comments go on their own line)", clip(f[2], 40))
			continue
		}
		src, err := ParseSource(f[1])
		if err != nil {
			p.problem(name, l.n, uuid, "%v", err)
			continue
		}
		p.entries = append(p.entries, Entry{UUID: uuid, Source: src, Line: l.n})
	}
}

// options parses the options file (`uuid options` per line) into the
// entries of the repositories file reposName.
func (p *configParser) options(name string, data []byte, reposName string) {
	optSeen := map[string]int{}
	for _, l := range contentLines(data) {
		if len(l.text) > MaxLineLen {
			p.problem(name, l.n, "", "line is longer than %d bytes", MaxLineLen)
			continue
		}
		uuid, rest := l.text, ""
		if i := strings.IndexAny(l.text, " \t"); i >= 0 {
			uuid, rest = l.text[:i], l.text[i+1:]
		}
		rest = strings.Trim(rest, " \t")
		if err := CheckUUID(uuid); err != nil {
			p.problem(name, l.n, "", "%v; want `uuid options`", err)
			continue
		}
		k := CanonicalUUID(uuid)
		if first, dup := optSeen[k]; dup {
			p.problem(name, l.n, uuid, "duplicate UUID %s (first on line %d); the repository is left as it is until one line is removed", uuid, first)
			continue
		}
		optSeen[k] = l.n
		if rest == "" {
			p.problem(name, l.n, uuid, "no mount options after the UUID; want `uuid options` (or remove the line)")
			continue
		}
		if err := CheckOptions(rest); err != nil {
			p.problem(name, l.n, uuid, "%v", err)
			continue
		}
		if !p.setOptions(k, rest, l.n) {
			if _, named := p.seen[k]; !named {
				// Harmless, but most likely a typo: say so without holding anything.
				p.c.Problems = append(p.c.Problems, Problem{File: name, Line: l.n, UUID: uuid,
					Msg: fmt.Sprintf("options for %s, which %s does not list; ignored", uuid, reposName)})
			}
		}
	}
}

// setOptions gives the entries of canonical UUID k their options (from
// line n); it says whether there was one.
func (p *configParser) setOptions(k, opts string, n int) bool {
	found := false
	for i := range p.entries {
		if CanonicalUUID(p.entries[i].UUID) == k {
			p.entries[i].Options, p.entries[i].OptionsLine = opts, n
			found = true
		}
	}
	return found
}

// forbiddenOptions change what kind of mount is made; the Manager decides
// that from the source.
var forbiddenOptions = map[string]string{
	"bind": "a local directory is bind-mounted already", "rbind": "repositories are not recursive binds",
	"remount": "the agent remounts by itself when options change", "move": "",
	"shared": "", "slave": "", "private": "", "unbindable": "",
	"rshared": "", "rslave": "", "rprivate": "", "runbindable": "",
	"make-shared": "", "make-slave": "", "make-private": "", "make-unbindable": "",
	"make-rshared": "", "make-rslave": "", "make-rprivate": "", "make-runbindable": "",
}

// CheckOptions checks a mount option list as the options file holds it:
// one argument of mount -o (comma-separated, no blanks, double quotes
// may protect commas in a value), not changing the kind of mount.
func CheckOptions(o string) error {
	if o == "" {
		return fmt.Errorf("empty mount options")
	}
	if len(o) > MaxOptionsLen {
		return fmt.Errorf("mount options are longer than %d bytes", MaxOptionsLen)
	}
	for i := 0; i < len(o); i++ {
		if c := o[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("mount options %q contain a blank or control character; mount -o takes one comma-separated list", clip(o, 80))
		}
	}
	items, ok := splitOptions(o)
	if !ok {
		return fmt.Errorf("mount options %q have an unterminated double quote", clip(o, 80))
	}
	for _, it := range items {
		name, _, _ := strings.Cut(it, "=")
		if why, bad := forbiddenOptions[name]; bad {
			if why == "" {
				why = "the agent decides how a repository is mounted"
			}
			return fmt.Errorf("mount option %q is not allowed here: %s", name, why)
		}
	}
	return nil
}

// splitOptions splits a comma-separated option list, keeping commas
// inside double quotes.
func splitOptions(o string) ([]string, bool) {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(o); i++ {
		switch o[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, o[start:i])
				start = i + 1
			}
		}
	}
	out = append(out, o[start:])
	return out, !quoted
}
