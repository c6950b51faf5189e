package bootloader

import (
	"fmt"
	"strings"
)

// parseGrub2 reads a GRUB 2 grub.cfg. Its top level runs as pygrub runs it:
// every `set` in order, whatever `if` it sits under (so a Debian or Red
// Hat `set default="${saved_entry}"` takes grubenv's value), menuentry and
// submenu blocks collected, function bodies and everything else skipped.
// env holds grubenv's variables. An entry's own commands are read later,
// when it is chosen (entryOf).
func parseGrub2(cfg []byte, env map[string]string) (*menu, error) {
	toks, err := lexGrub(string(cfg))
	if err != nil {
		return nil, fmt.Errorf("grub.cfg: %w", err)
	}
	cmds, err := parseGrub(toks)
	if err != nil {
		return nil, fmt.Errorf("grub.cfg: %w", err)
	}
	g := &grub2{env: map[string]string{}, m: &menu{file: "grub.cfg"}}
	for k, v := range env {
		g.env[k] = v
	}
	items, err := g.walk(cmds)
	if err != nil {
		return nil, fmt.Errorf("grub.cfg: %w", err)
	}
	g.m.items = items
	g.m.defaultSpec = g.env["default"]
	if g.m.defaultSpec == "saved" {
		g.m.defaultSpec = env["saved_entry"]
	}
	if len(g.m.flat()) == 0 && g.bls {
		return nil, fmt.Errorf("grub.cfg has no menuentry but runs blscfg: Boot Loader Specification entries (/loader/entries) are not read; " +
			"boot this guest with kernel/ramdisk in vm.cfg, or with bootloader_args --kernel and --ramdisk")
	}
	return g.m, nil
}

type grub2 struct {
	env     map[string]string
	m       *menu
	entries int
	bls     bool
}

// keywords that only structure a script; the command after them still runs.
var grubKeywords = map[string]bool{"if": true, "then": true, "elif": true, "else": true, "fi": true,
	"do": true, "done": true, "while": true, "until": true, "!": true}

// stripKeywords drops the leading if/then/else... words of a command.
func stripKeywords(ws []word) []word {
	for len(ws) > 0 {
		s, ok := ws[0].literal()
		if !ok || !grubKeywords[s] {
			break
		}
		ws = ws[1:]
	}
	return ws
}

func (g *grub2) walk(cmds []command) ([]*menuItem, error) {
	var items []*menuItem
	for _, c := range cmds {
		ws := stripKeywords(c.words)
		if len(ws) == 0 {
			continue
		}
		name, _ := ws[0].literal()
		switch {
		case (name == "menuentry" || name == "submenu") && c.block:
			if g.entries++; g.entries > maxEntries {
				return nil, fmt.Errorf("more than %d menu entries", maxEntries)
			}
			it := g.header(ws[1:])
			if name == "submenu" {
				sub, err := g.walk(c.body)
				if err != nil {
					return nil, err
				}
				it.items = sub
			} else {
				it.entry = g.entryOf(it.title, c.body)
			}
			items = append(items, it)
		case c.block || name == "for":
			// function bodies and loops are not run
		case name == "blscfg":
			g.bls = true
		default:
			g.assign(ws, g.env)
		}
	}
	return items, nil
}

// assign runs `set NAME=VALUE`, `NAME=VALUE` and `unset NAME` on env;
// unknown variables expand to nothing, as in GRUB.
func (g *grub2) assign(ws []word, env map[string]string) {
	name, _ := ws[0].literal()
	if name == "unset" {
		for _, w := range ws[1:] {
			if s, ok := w.literal(); ok {
				delete(env, s)
			}
		}
		return
	}
	if name == "set" {
		ws = ws[1:]
	} else if len(ws) != 1 {
		return
	}
	for _, w := range ws {
		if len(w) == 0 || w[0].isVar {
			return
		}
		k, v, ok := strings.Cut(w[0].text, "=")
		if !ok || !validName(k) {
			return
		}
		rest := append(word{{text: v}}, w[1:]...)
		env[k] = expandLenient(rest, env)
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

func expandLenient(w word, env map[string]string) string {
	var b strings.Builder
	for _, s := range w {
		if s.isVar {
			b.WriteString(env[s.text])
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// header reads menuentry's options: the first word not an option is the
// title; --id names it for `set default`. $menuentry_id_option is --id
// (GRUB 2.00 on has feature_menuentry_id).
func (g *grub2) header(ws []word) *menuItem {
	env := map[string]string{"menuentry_id_option": "--id"}
	for k, v := range g.env {
		if k != "menuentry_id_option" {
			env[k] = v
		}
	}
	it := &menuItem{}
	titled := false
	for i := 0; i < len(ws); i++ {
		s := expandLenient(ws[i], env)
		switch {
		case s == "--id" && i+1 < len(ws):
			i++
			it.id = expandLenient(ws[i], env)
		case strings.HasPrefix(s, "--id="):
			it.id = strings.TrimPrefix(s, "--id=")
		case (s == "--class" || s == "--users" || s == "--hotkey" || s == "--source") && i+1 < len(ws):
			i++
		case strings.HasPrefix(s, "--"):
		case !titled:
			it.title, titled = s, true
		}
	}
	return it
}

// entryOf reads a menuentry's body: linux and initrd lines (their
// variables must be set: an unknown one is this entry's error), `set`s in
// order, every other command ignored (search and `set root` too: paths
// are on the partition grub.cfg is on, unless they name a device).
func (g *grub2) entryOf(title string, body []command) *bootEntry {
	e := &bootEntry{title: title}
	env := map[string]string{}
	for k, v := range g.env {
		env[k] = v
	}
	env["root"] = ""
	fail := func(format string, a ...any) *bootEntry {
		e.err = fmt.Errorf(format, a...)
		return e
	}
	sawLinux := false
	for _, c := range body {
		ws := stripKeywords(c.words)
		if len(ws) == 0 || c.block {
			continue
		}
		name, _ := ws[0].literal()
		switch name {
		case "linux", "linux16", "linuxefi":
			args, err := expandStrict(ws[1:], env)
			if err != nil {
				return fail("line %d: %w", c.line, err)
			}
			if len(args) == 0 {
				return fail("line %d: %s without a kernel path", c.line, name)
			}
			e.kernel, e.args, sawLinux = args[0], strings.Join(args[1:], " "), true
		case "initrd", "initrd16", "initrdefi":
			paths, err := expandStrict(ws[1:], env)
			if err != nil {
				return fail("line %d: %w", c.line, err)
			}
			e.initrds = paths
		case "multiboot", "multiboot2", "module", "module2", "chainloader", "kfreebsd", "knetbsd", "kopenbsd", "xnu_kernel", "xnu_kernel64", "appleloader", "ntldr":
			return fail("line %d: it boots with %s, not a Linux kernel directly", c.line, name)
		default:
			g.assign(ws, env)
			env["root"] = "" // set root and search --set=root are not followed
		}
	}
	if !sawLinux {
		return fail("it has no linux line")
	}
	return e
}

// expandStrict expands words whose variables must all be set.
func expandStrict(ws []word, env map[string]string) ([]string, error) {
	var out []string
	for _, w := range ws {
		var b strings.Builder
		for _, s := range w {
			if !s.isVar {
				b.WriteString(s.text)
				continue
			}
			v, ok := env[s.text]
			if !ok {
				return nil, fmt.Errorf("it uses $%s, which grub.cfg does not set", s.text)
			}
			b.WriteString(v)
		}
		// An unquoted $var holding several words is several words in GRUB;
		// joined with spaces they are the same kernel arguments.
		out = append(out, b.String())
	}
	return out, nil
}
