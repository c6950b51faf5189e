package bootloader

import (
	"fmt"
	"strconv"
	"strings"
)

// bootEntry is one bootable entry of a menu, before its paths are resolved.
type bootEntry struct {
	title   string
	kernel  string   // a path, maybe with a (device) prefix
	initrds []string // GRUB 2 concatenates several, as Linux allows
	args    string
	root    string // a GRUB legacy `root (hd0,N)` device; "" is the config's own partition
	legacy  bool   // device numbers count partitions from 0 (GRUB legacy)
	err     error  // why this entry cannot be booted, reported only if it is chosen
}

// menuItem is an entry or a submenu (entry nil) of a menu.
type menuItem struct {
	title, id string
	entry     *bootEntry
	items     []*menuItem
}

// menu is a parsed config: its items and its default (GRUB's syntax: N,
// a title or id, "A>B" through submenus).
type menu struct {
	file        string // "grub.cfg", "menu.lst"
	items       []*menuItem
	defaultSpec string
}

// flat lists the menu's entries depth first, as pygrub's --entry counts them.
func (m *menu) flat() []*bootEntry {
	var out []*bootEntry
	var walk func([]*menuItem)
	walk = func(items []*menuItem) {
		for _, it := range items {
			if it.entry != nil {
				out = append(out, it.entry)
			} else {
				walk(it.items)
			}
		}
	}
	walk(m.items)
	return out
}

// choose picks the entry Options ask for, or the menu's default.
func (m *menu) choose(o Options) (*bootEntry, int, error) {
	all := m.flat()
	if len(all) == 0 {
		return nil, 0, fmt.Errorf("%s has no boot entries", m.file)
	}
	index := func(e *bootEntry) int {
		for i, x := range all {
			if x == e {
				return i
			}
		}
		return -1
	}
	switch {
	case o.EntryTitle != "":
		for i, e := range all {
			if e.title == o.EntryTitle {
				return e, i, nil
			}
		}
		return nil, 0, fmt.Errorf("%s has no entry titled %q (bootloader_args --entry)", m.file, o.EntryTitle)
	case o.Entry >= 0:
		if o.Entry >= len(all) {
			return nil, 0, fmt.Errorf("%s has %d entries, no entry %d (bootloader_args --entry counts from 0)", m.file, len(all), o.Entry)
		}
		return all[o.Entry], o.Entry, nil
	}
	e := m.byDefault()
	return e, index(e), nil
}

// byDefault follows the default spec as GRUB does; a default that names
// nothing falls back to the first entry, as GRUB's does.
func (m *menu) byDefault() *bootEntry {
	items := m.items
	spec := strings.TrimSpace(m.defaultSpec)
	var it *menuItem
	for _, part := range strings.Split(spec, ">") {
		if it != nil && it.entry != nil {
			it = nil // a path that goes on below an entry
			break
		}
		if it != nil {
			items = it.items
		}
		if it = findItem(items, part); it == nil {
			break
		}
	}
	if it == nil {
		it = &menuItem{items: m.items}
	}
	for it.entry == nil { // a submenu: its first entry
		if len(it.items) == 0 {
			return m.flat()[0]
		}
		it = it.items[0]
	}
	return it.entry
}

func findItem(items []*menuItem, key string) *menuItem {
	key = strings.TrimSpace(key)
	if n, err := strconv.Atoi(key); err == nil {
		if n >= 0 && n < len(items) {
			return items[n]
		}
		return nil
	}
	for _, it := range items {
		if key != "" && (it.title == key || it.id == key) {
			return it
		}
	}
	return nil
}
