package bootloader

import (
	"fmt"
	"io"
	"strings"
)

const (
	// DefaultMaxKernel and DefaultMaxInitrd bound the files Load accepts
	// when Options leave them 0.
	DefaultMaxKernel int64 = 128 << 20
	DefaultMaxInitrd int64 = 1 << 30

	maxMetaRead = 256 << 20 // everything Load reads but the kernel and initrd
	maxGrubenv  = 64 << 10
)

// Options choose the entry and bound the files.
type Options struct {
	// Entry is pygrub's --entry=N: the Nth entry of the config, counted
	// from 0 over every menuentry in file order (those of submenus too);
	// -1 boots the config's default. ParseArgs sets -1 unless told.
	Entry int
	// EntryTitle is pygrub's --entry=TITLE: the entry with that title.
	EntryTitle string
	// Kernel, Ramdisk and Args are pygrub's --kernel, --ramdisk and
	// --args: with Kernel set, that file is booted (found on the first
	// partition that has it) and the config is not read; otherwise Args
	// is appended to the entry's arguments.
	Kernel, Ramdisk, Args string
	// MaxKernel and MaxInitrd bound the kernel's and initrd's sizes (0:
	// DefaultMaxKernel, DefaultMaxInitrd).
	MaxKernel, MaxInitrd int64
}

// Boot is what to boot: the chosen entry's title, kernel command line,
// kernel and initrd (nil when the entry has none).
type Boot struct {
	Title          string
	Args           string
	Kernel, Initrd *File
	// Config says which file on which partition the entry came from, for
	// logs ("/boot/grub/grub.cfg on partition 1 (msdos1)"); empty with
	// Options.Kernel.
	Config string
}

// File is a kernel or initrd inside the image; several initrds of one
// GRUB 2 line are one File, concatenated as Linux reads them.
type File struct {
	path  string
	parts []filePart
	size  int64
}

type filePart struct {
	data *extData
	dev  *device
}

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// Path says where the file is ("/boot/vmlinuz-6.1.0-9-amd64 on
// partition 1 (msdos1)").
func (f *File) Path() string { return f.path }

// WriteTo streams the file from the image to w; each call starts again at
// the first byte.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, p := range f.parts {
		n, err := p.data.writeTo(p.dev, w)
		total += n
		if err != nil {
			return total, fmt.Errorf("read %s: %w", f.path, err)
		}
	}
	return total, nil
}

// ParseArgs reads vm.cfg's bootloader_args as pygrub does: --entry=N (or
// a title), --kernel=PATH, --ramdisk=PATH, --args=ARGS, each also as
// `-e N`, `-k PATH`, `-r PATH` or `--entry N`; -q/--quiet is accepted
// (this reader never asks anything). Any other option is an error naming it.
func ParseArgs(s string) (Options, error) {
	o := Options{Entry: -1}
	words, err := splitArgs(s)
	if err != nil {
		return o, fmt.Errorf("bootloader_args: %w", err)
	}
	for i := 0; i < len(words); i++ {
		name, val, hasVal := strings.Cut(words[i], "=")
		if !strings.HasPrefix(name, "-") {
			return o, fmt.Errorf("bootloader_args: %q is not a pygrub option (the disk is given by vm.cfg's disk)", words[i])
		}
		if !strings.HasPrefix(name, "--") && len(name) > 2 { // -e1
			name, val, hasVal = name[:2], name[2:], true
		}
		if name == "-q" || name == "--quiet" {
			continue
		}
		if !hasVal {
			if i+1 == len(words) {
				return o, fmt.Errorf("bootloader_args: pygrub option %s needs a value", name)
			}
			i++
			val = words[i]
		}
		if err := o.set(name, val); err != nil {
			return o, fmt.Errorf("bootloader_args: %w", err)
		}
	}
	if o.Ramdisk != "" && o.Kernel == "" {
		return o, fmt.Errorf("bootloader_args: --ramdisk needs --kernel")
	}
	return o, nil
}

func (o *Options) set(name, val string) error {
	switch name {
	case "-e", "--entry":
		var n int
		if _, err := fmt.Sscanf(val, "%d", &n); err == nil && fmt.Sprint(n) == val {
			if n < 0 {
				return fmt.Errorf("--entry=%d: entries count from 0", n)
			}
			o.Entry = n
		} else {
			o.EntryTitle = val
		}
	case "-k", "--kernel":
		o.Kernel = val
	case "-r", "--ramdisk":
		o.Ramdisk = val
	case "--args":
		o.Args = val
	default:
		return fmt.Errorf("pygrub option %s is not supported (supported: --entry, --kernel, --ramdisk, --args, --quiet)", name)
	}
	return nil
}

// splitArgs splits as a shell does: blanks between words, '...' and "..."
// quoting, \ escaping.
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out, inWord = append(out, cur.String()), false
				cur.Reset()
			}
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("a %c quote that does not end", c)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
