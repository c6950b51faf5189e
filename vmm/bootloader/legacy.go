package bootloader

import (
	"fmt"
	"strings"
)

const maxConfigLines = 1 << 16

// parseLegacy reads a GRUB legacy menu.lst or grub.conf: `default N` (or
// `saved`: savedDefault, the first line of grub/default, else 0), `title`
// starting an entry, `root (hd0,N)` (partitions counted from 0),
// `kernel PATH ARGS`, `initrd PATH`; `module`, `chainloader` and
// `rootnoverify` make the entry one that cannot be booted directly.
// Other commands (timeout, hiddenmenu, splashimage, savedefault...) do
// nothing here.
func parseLegacy(cfg []byte, savedDefault string) (*menu, error) {
	m := &menu{file: "menu.lst"}
	var cur *bootEntry
	lines := strings.Split(string(cfg), "\n")
	if len(lines) > maxConfigLines {
		return nil, fmt.Errorf("menu.lst has more than %d lines", maxConfigLines)
	}
	for n, line := range lines {
		cmd, arg := legacyCommand(line)
		if cmd == "" {
			continue
		}
		switch {
		case cmd == "title":
			if len(m.items) == maxEntries {
				return nil, fmt.Errorf("menu.lst has more than %d entries", maxEntries)
			}
			cur = &bootEntry{title: arg, legacy: true}
			m.items = append(m.items, &menuItem{title: arg, entry: cur})
		case cmd == "default" && cur == nil:
			m.defaultSpec = arg
			if arg == "saved" {
				m.defaultSpec = savedDefault
			}
		case cur != nil:
			legacyEntryLine(cur, cmd, arg, n+1)
		}
	}
	for _, it := range m.items {
		if it.entry.err == nil && it.entry.kernel == "" {
			it.entry.err = fmt.Errorf("it has no kernel line")
		}
	}
	return m, nil
}

// legacyCommand splits a line into its command and the rest; GRUB legacy
// separates them by blanks or '='.
func legacyCommand(line string) (string, string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", ""
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimSpace(strings.TrimLeft(line[i:], " \t="))
}

func legacyEntryLine(e *bootEntry, cmd, arg string, line int) {
	if e.err != nil {
		return
	}
	switch cmd {
	case "root":
		e.root = strings.Trim(strings.Fields(arg + " x")[0], "()")
	case "kernel":
		f := strings.Fields(arg)
		for len(f) > 0 && strings.HasPrefix(f[0], "--") { // --type=, --no-mem-option
			f = f[1:]
		}
		if len(f) == 0 {
			e.err = fmt.Errorf("line %d: kernel without a path", line)
			return
		}
		e.kernel, e.args = f[0], strings.Join(f[1:], " ")
	case "initrd":
		if f := strings.Fields(arg); len(f) > 0 {
			e.initrds = []string{f[0]}
		}
	case "module", "modulenounzip":
		e.err = fmt.Errorf("line %d: it is a multiboot entry (kernel and module: a hypervisor), not a Linux kernel booted directly", line)
	case "chainloader", "rootnoverify":
		e.err = fmt.Errorf("line %d: it boots with %s (another boot loader), not a Linux kernel directly", line, cmd)
	}
}
