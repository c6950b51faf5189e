package vmcfg

import (
	"fmt"
	"strings"
)

// PygrubArgs is bootloader_args (xm: bootargs) read as pygrub's options.
// The agent applies them itself when it reads the guest's grub menu; it
// never runs pygrub.
type PygrubArgs struct {
	// Entry is --entry=: the grub entry to boot, by number (0 is the
	// first) or by title; "" means the menu's default.
	Entry string
	// Kernel and Ramdisk are --kernel= and --ramdisk=: files in the
	// guest's boot filesystem to boot instead of the entry's.
	Kernel  string
	Ramdisk string
	// NotApplied are the options accepted but with no effect here, for
	// a warning (-i, --interactive: there is no menu to show).
	NotApplied []string
}

// pygrubQuiet are pygrub's options that ask for what the agent always
// does (no menu): accepted, nothing to apply.
var pygrubQuiet = map[string]bool{"-q": true, "--quiet": true}

// ParsePygrubArgs reads pygrub's options from s, split as a shell would
// ('...' and "..." quote blanks, a backslash escapes outside single
// quotes). Options other than -q, --quiet, -i, --interactive, --entry=,
// --kernel= and --ramdisk= are errors: the rest of pygrub's options
// (--args: write them in extra; --output*, --offset, --not-really,
// --list-entries, --isconfig) describe how xend ran it.
func ParsePygrubArgs(s string) (PygrubArgs, error) {
	var p PygrubArgs
	words, err := shellWords(s)
	if err != nil {
		return p, fmt.Errorf("bootloader arguments %s: %v", quote(s), err)
	}
	for _, w := range words {
		k, v, hasValue := strings.Cut(w, "=")
		switch {
		case pygrubQuiet[w]:
		case w == "-i" || w == "--interactive":
			p.NotApplied = append(p.NotApplied, w)
		case k == "--entry" && hasValue && v != "":
			p.Entry = v
		case k == "--kernel" && hasValue && v != "":
			p.Kernel = v
		case k == "--ramdisk" && hasValue && v != "":
			p.Ramdisk = v
		case k == "--args":
			return p, fmt.Errorf("bootloader arguments: --args is not supported: write the kernel's arguments in extra (and root)")
		default:
			return p, fmt.Errorf("bootloader arguments: %s is not supported (pygrub's -q, --entry=N or TITLE, --kernel=PATH and --ramdisk=PATH are)", quote(w))
		}
	}
	for _, f := range []string{p.Kernel, p.Ramdisk} {
		if msg := checkPath(f); msg != "" {
			return p, fmt.Errorf("bootloader arguments: %s %s", quote(f), msg)
		}
	}
	return p, nil
}

// PygrubArgs returns c's bootloader_args read by ParsePygrubArgs; for a
// valid Config it has no error (Parse and Validate check it).
func (c *Config) PygrubArgs() (PygrubArgs, error) {
	return ParsePygrubArgs(c.BootloaderArgs)
}

// shellWords splits s into words as a POSIX shell does, without
// expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var b strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated '")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			end, err := doubleQuoted(s, i+1, &b)
			if err != nil {
				return nil, err
			}
			i = end
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("a backslash at the end")
			}
			i++
			b.WriteByte(s[i])
			inWord = true
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words, nil
}

// doubleQuoted copies a "..." string from s[i:] (after its opening quote)
// to b and returns the index of the closing quote.
func doubleQuoted(s string, i int, b *strings.Builder) (int, error) {
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, nil
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return 0, fmt.Errorf("unterminated \"")
}
