package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

var (
	grub2Paths  = []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub/grub.cfg", "/grub2/grub.cfg"}
	legacyPaths = []string{"/boot/grub/menu.lst", "/boot/grub/grub.conf", "/grub/menu.lst", "/grub/grub.conf"}
)

// volume is a partition with an ext filesystem on it.
type volume struct {
	part partition
	fs   *extFS
}

type loader struct {
	r     io.ReaderAt
	o     Options
	vols  []*volume
	notes []string // why partitions or paths were passed over, for the final error
}

// Load reads the disk image r (size bytes) and returns what its boot
// config's chosen entry boots: GRUB 2's grub.cfg first, then GRUB
// legacy's menu.lst, on the partitions in boot order (see partitions).
// Nothing of the image is run or trusted; every read is bounded.
func Load(r io.ReaderAt, size int64, o Options) (*Boot, error) {
	if o.MaxKernel <= 0 {
		o.MaxKernel = DefaultMaxKernel
	}
	if o.MaxInitrd <= 0 {
		o.MaxInitrd = DefaultMaxInitrd
	}
	disk := &device{r: r, size: size, what: "the disk", budget: &budget{left: maxMetaRead}}
	parts, err := partitions(disk)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	l := &loader{r: r, o: o}
	for _, p := range parts {
		dev := disk.sub(p.start, p.size, p.String())
		fs, err := openExt(dev)
		switch {
		case err == nil:
			l.vols = append(l.vols, &volume{part: p, fs: fs})
		case errors.Is(err, errNotExt):
			l.notes = append(l.notes, fmt.Sprintf("%s (%s) holds %s, which this reader does not read", p, p.typ, otherFS(dev)))
		default:
			l.notes = append(l.notes, fmt.Sprintf("%s: %v", p, err))
		}
	}
	if len(l.vols) == 0 {
		return nil, fmt.Errorf("no readable ext2/ext3/ext4 filesystem on the disk: %s", strings.Join(l.notes, "; "))
	}
	if o.Kernel != "" {
		return l.direct()
	}
	return l.fromConfig()
}

func (l *loader) fromConfig() (*Boot, error) {
	m, vol, where, err := l.findConfig()
	if err != nil {
		return nil, err
	}
	e, idx, err := m.choose(l.o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if e.err != nil {
		return nil, fmt.Errorf("%s entry %d (%q): %w", where, idx, e.title, e.err)
	}
	kernel, err := l.file(vol, e, []string{e.kernel}, l.o.MaxKernel, "kernel")
	if err != nil {
		return nil, fmt.Errorf("%s entry %d (%q): %w", where, idx, e.title, err)
	}
	b := &Boot{Title: e.title, Args: joinArgs(e.args, l.o.Args), Kernel: kernel, Config: where}
	if len(e.initrds) > 0 {
		if b.Initrd, err = l.file(vol, e, e.initrds, l.o.MaxInitrd, "initrd"); err != nil {
			return nil, fmt.Errorf("%s entry %d (%q): %w", where, idx, e.title, err)
		}
	}
	return b, nil
}

func joinArgs(a, b string) string {
	return strings.TrimSpace(strings.TrimSpace(a) + " " + strings.TrimSpace(b))
}

// direct boots Options.Kernel (and Ramdisk) from the first partition
// that has it, as pygrub --kernel does.
func (l *loader) direct() (*Boot, error) {
	for _, v := range l.vols {
		k, err := l.file(v, &bootEntry{}, []string{l.o.Kernel}, l.o.MaxKernel, "kernel")
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bootloader_args --kernel: %w", err)
		}
		b := &Boot{Args: strings.TrimSpace(l.o.Args), Kernel: k}
		if l.o.Ramdisk != "" {
			if b.Initrd, err = l.file(v, &bootEntry{}, []string{l.o.Ramdisk}, l.o.MaxInitrd, "ramdisk"); err != nil {
				return nil, fmt.Errorf("bootloader_args --ramdisk: %w", err)
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("bootloader_args --kernel: %s is on no partition (%s)", l.o.Kernel, l.looked())
}

func (l *loader) looked() string {
	var s []string
	for _, v := range l.vols {
		s = append(s, v.part.String())
	}
	out := "looked on " + strings.Join(s, ", ")
	if len(l.notes) > 0 {
		out += "; " + strings.Join(l.notes, "; ")
	}
	return out
}

// findConfig finds the first boot config on the volumes in boot order.
func (l *loader) findConfig() (*menu, *volume, string, error) {
	for _, v := range l.vols {
		for _, p := range append(append([]string{}, grub2Paths...), legacyPaths...) {
			in, err := v.fs.resolve(p)
			if errors.Is(err, errNotFound) {
				continue
			}
			where := p + " on " + v.part.String()
			if err != nil {
				l.notes = append(l.notes, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			if in.typ() != modeRegular {
				l.notes = append(l.notes, where+" is not a regular file")
				continue
			}
			cfg, err := v.fs.readAll(in, maxConfigBytes, where)
			if err != nil {
				return nil, nil, "", err
			}
			var m *menu
			if strings.HasSuffix(p, ".cfg") {
				m, err = parseGrub2(cfg, l.grubenv(v, path.Dir(p)))
			} else {
				m, err = parseLegacy(cfg, l.legacyDefault(v, path.Dir(p)))
			}
			if err != nil {
				return nil, nil, "", fmt.Errorf("%s: %w", where, err)
			}
			return m, v, where, nil
		}
	}
	return nil, nil, "", fmt.Errorf("no grub.cfg or menu.lst on any partition: looked in %s, %s; %s",
		strings.Join(grub2Paths, ", "), strings.Join(legacyPaths, ", "), l.looked())
}

// grubenv reads the GRUB environment block beside grub.cfg (absent or
// unreadable: no variables, as GRUB boots without it).
func (l *loader) grubenv(v *volume, dir string) map[string]string {
	b := l.small(v, dir+"/grubenv", maxGrubenv)
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if k, val, ok := strings.Cut(line, "="); ok && validName(k) {
			val = strings.NewReplacer(`\n`, "\n", `\\`, `\`).Replace(val)
			env[k] = val
		}
	}
	return env
}

// legacyDefault reads GRUB legacy's saved default (the first line of
// grub/default), else "0".
func (l *loader) legacyDefault(v *volume, dir string) string {
	b := l.small(v, dir+"/default", maxGrubenv)
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if _, err := strconv.Atoi(strings.TrimSpace(string(line))); err == nil {
		return strings.TrimSpace(string(line))
	}
	return "0"
}

func (l *loader) small(v *volume, p string, limit int64) []byte {
	in, err := v.fs.resolve(p)
	if err != nil || in.typ() != modeRegular {
		return nil
	}
	b, err := v.fs.readAll(in, limit, p)
	if err != nil {
		return nil
	}
	return b
}
