package repository

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Secondary mounts are file systems a manager mounts beside the
// repositories, each at DIR/<name> of one directory the agent keeps for
// them (agent 3's storage_plugin_mount at /nfsmnt/<uuid>: CloudStack's
// secondary storage, with its templates and ISO images). They hold no
// .ovsrepo, are not in the repositories files and are not remounted
// after the host boots: the kernel's mount table is their only record,
// so that what a restarted agent shows is what is mounted. They are
// always mounted nosuid and nodev (and a block device noexec too), with
// the caller's options checked against an allow-list, since a manager,
// not the host's administrator, chooses them.

// ErrNotMounted marks a secondary mount point where nothing is mounted.
var ErrNotMounted = errors.New("not mounted")

// secondaryName is the form of a secondary mount's name.
var secondaryName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// CheckSecondaryName checks the name of a secondary mount: the folder it
// is mounted on, inside the secondary directory.
func CheckSecondaryName(name string) error {
	if !secondaryName.MatchString(name) {
		return fmt.Errorf("mount name %q: want 1 to 64 letters, digits, '-' or '_', starting with a letter or digit (a uuid)", clip(name, 80))
	}
	return nil
}

// secondaryOptions are the mount options a caller may give a secondary
// mount, by the kind of source; true when the option takes a value.
var secondaryOptions = map[SourceKind]map[string]bool{
	NFS: {
		"ro": false, "rw": false, "defaults": false, "vers": true, "nfsvers": true, "minorversion": true,
		"proto": true, "port": true, "mountport": true, "mountproto": true, "tcp": false, "udp": false,
		"timeo": true, "retrans": true, "retry": true, "soft": false, "hard": false, "softerr": false,
		"intr": false, "nointr": false, "lock": false, "nolock": false, "local_lock": true,
		"rsize": true, "wsize": true, "bg": false, "fg": false,
		"ac": false, "noac": false, "actimeo": true, "acregmin": true, "acregmax": true, "acdirmin": true, "acdirmax": true,
		"cto": false, "nocto": false, "lookupcache": true, "sharecache": false, "nosharecache": false,
		"resvport": false, "noresvport": false, "sec": true,
		"atime": false, "noatime": false, "nodiratime": false, "relatime": false,
	},
	BlockDevice: {
		"ro": false, "rw": false, "defaults": false, "atime": false, "noatime": false, "nodiratime": false,
		"relatime": false, "strictatime": false, "lazytime": false, "sync": false, "async": false,
		"discard": false, "nodiscard": false,
	},
}

// secondaryForced are the options every secondary mount gets, after the
// caller's (mount applies the last of contradicting options).
func secondaryForced(k SourceKind) []string {
	if k == BlockDevice {
		return []string{"nosuid", "nodev", "noexec"}
	}
	return []string{"nosuid", "nodev"}
}

// checkSecondaryOptions checks a caller's option list for a source kind.
func checkSecondaryOptions(k SourceKind, opts []string) error {
	allowed := secondaryOptions[k]
	if allowed == nil {
		return fmt.Errorf("a %s cannot be a secondary mount: give an NFS export (host:/export) or a block device", k)
	}
	total := 0
	for _, o := range opts {
		total += len(o) + 1
		if total > MaxOptionsLen {
			return fmt.Errorf("mount options are longer than %d bytes", MaxOptionsLen)
		}
		name, val, hasVal := strings.Cut(o, "=")
		want, ok := allowed[name]
		switch {
		case name == "suid" || name == "dev" || name == "exec":
			return fmt.Errorf("mount option %q is not allowed: file systems a manager mounts are nosuid, nodev and noexec (block devices)", name)
		case !ok:
			return fmt.Errorf("mount option %q is not allowed for a %s here; allowed: %s", clip(o, 40), k, strings.Join(slices.Sorted(maps.Keys(allowed)), ", "))
		case want != hasVal:
			if want {
				return fmt.Errorf("mount option %q takes a value (%s=...)", name, name)
			}
			return fmt.Errorf("mount option %q takes no value", name)
		case hasVal && (val == "" || strings.ContainsAny(val, ",\" \t\n") || len(val) > 64):
			return fmt.Errorf("mount option %q: value %q is not a plain value", name, clip(val, 40))
		case name == "sec" && val != "sys":
			return fmt.Errorf("mount option sec=%s: only sec=sys is served (no Kerberos credentials are kept here)", clip(val, 20))
		}
	}
	return nil
}

// SecondaryRequest is a file system to mount at Dir/Name.
type SecondaryRequest struct {
	// Dir is the directory secondary mounts are made in (made 0755 if it
	// is missing). It must be absolute and clean, and neither inside the
	// repositories' root or staging directory nor holding them.
	Dir  string
	Name string // CheckSecondaryName
	// Source is an NFS export or a block device (the caller has checked
	// that this host may mount it).
	Source  Source
	Options []string // allowed per kind; see secondaryOptions
}

// SecondaryMount is a file system mounted in the secondary directory, as
// the mount table shows it.
type SecondaryMount struct {
	Name       string `xmlrpc:"name" json:"name"`
	MountPoint string `xmlrpc:"mount_point" json:"mount_point"`
	Source     string `xmlrpc:"source" json:"source"` // as the mount table shows it (host:/export, /dev/...)
	FSType     string `xmlrpc:"fs_type" json:"fs_type"`
	Options    string `xmlrpc:"options" json:"options"` // per-mount options (ro/rw, nosuid, ...)
	Size       uint64 `xmlrpc:"size" json:"size"`       // bytes; 0 when statfs did not answer in time
	Free       uint64 `xmlrpc:"free" json:"free"`
}

// checkSecondaryDir checks dir against the repositories' directories.
func (m *Manager) checkSecondaryDir(dir string) error {
	if err := checkPath(dir); err != nil || dir == "/" {
		return fmt.Errorf("secondary mount directory %q: want an absolute, clean path other than /", clip(dir, 80))
	}
	for _, d := range []string{m.opts.Root, m.opts.StagingDir} {
		if within(dir, d) || within(d, dir) {
			return fmt.Errorf("secondary mount directory %s overlaps the repositories' %s: give a directory of its own", dir, d)
		}
	}
	return nil
}

// MountSecondary mounts req.Source at req.Dir/req.Name. A mount there of
// the same source is answered as it is (a repeated call changes
// nothing); another one is refused (ErrConfigured). The mount point is
// made, and removed again when the mount fails; an existing folder must
// be empty. The source and its options are mounted with mount(8),
// bounded by the mount timeout like every repository's.
func (m *Manager) MountSecondary(ctx context.Context, req SecondaryRequest) (SecondaryMount, error) {
	if err := m.checkSecondaryDir(req.Dir); err != nil {
		return SecondaryMount{}, classify(ErrBadInput, err)
	}
	if err := CheckSecondaryName(req.Name); err != nil {
		return SecondaryMount{}, classify(ErrBadInput, err)
	}
	if err := checkSecondaryOptions(req.Source.Kind, req.Options); err != nil {
		return SecondaryMount{}, classify(ErrBadInput, err)
	}
	m.secMu.Lock()
	defer m.secMu.Unlock()
	target := filepath.Join(req.Dir, req.Name)
	table, err := ReadMountInfo()
	if err != nil {
		return SecondaryMount{}, err
	}
	if mi, ok := topMount(table, target); ok {
		if sameSource(mi, req.Source) {
			return m.secondaryOf(mi), nil
		}
		return SecondaryMount{}, classify(ErrConfigured, fmt.Errorf("%s has %s mounted already, not %s; unmount it first", target, mi.Source, req.Source.Raw))
	}
	if err := mkdirReal(req.Dir); err != nil {
		return SecondaryMount{}, err
	}
	made, err := mkdirEmpty(target)
	if err != nil {
		return SecondaryMount{}, err
	}
	opts := append(append([]string{}, req.Options...), secondaryForced(req.Source.Kind)...)
	args := []string{"-o", strings.Join(opts, ",")}
	switch req.Source.Kind {
	case NFS:
		args = append([]string{"-t", "nfs"}, args...)
	case BlockDevice:
		st, err := os.Stat(req.Source.Path)
		if err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			if made {
				os.Remove(target)
			}
			return SecondaryMount{}, classify(ErrBadInput, fmt.Errorf("mount %s: not a block device", req.Source.Raw))
		}
	}
	args = append(args, "--", req.Source.Raw, target)
	if err := m.mnt.run(ctx, m.mnt.mountCmd, args...); err != nil {
		if made && !isMounted(target) {
			os.Remove(target)
		}
		return SecondaryMount{}, fmt.Errorf("mount %s at %s (nothing is mounted): %w", req.Source.Raw, target, err)
	}
	table, err = ReadMountInfo()
	if err != nil {
		return SecondaryMount{}, err
	}
	mi, ok := topMount(table, target)
	if !ok || !mi.HasOption("nosuid") || !mi.HasOption("nodev") {
		if ok {
			if err := m.mnt.run(context.WithoutCancel(ctx), m.mnt.umountCmd, "--", target); err != nil {
				unbind(target, true)
			}
		}
		if made {
			os.Remove(target)
		}
		return SecondaryMount{}, fmt.Errorf("mount %s at %s: mount(8) succeeded but the mount table shows no nosuid,nodev mount there (%q); it is unmounted again", req.Source.Raw, target, mi.Options)
	}
	m.log.Info("secondary file system mounted", zap.String("source", req.Source.Raw), zap.String("mount_point", target), zap.String("options", mi.Options))
	return m.secondaryOf(mi), nil
}

// UnmountSecondary unmounts what is mounted at dir/name and removes the
// folder. A busy file system (a domain uses an ISO image from it) stays
// mounted and the error says so; nothing mounted there is ErrNotMounted.
func (m *Manager) UnmountSecondary(ctx context.Context, dir, name string) (SecondaryMount, error) {
	if err := m.checkSecondaryDir(dir); err != nil {
		return SecondaryMount{}, classify(ErrBadInput, err)
	}
	if err := CheckSecondaryName(name); err != nil {
		return SecondaryMount{}, classify(ErrBadInput, err)
	}
	m.secMu.Lock()
	defer m.secMu.Unlock()
	target := filepath.Join(dir, name)
	table, err := ReadMountInfo()
	if err != nil {
		return SecondaryMount{}, err
	}
	mi, ok := topMount(table, target)
	if !ok {
		return SecondaryMount{}, classify(ErrNotMounted, fmt.Errorf("nothing is mounted at %s", target))
	}
	was := m.secondaryOf(mi)
	if err := m.mnt.run(ctx, m.mnt.umountCmd, "--", target); err != nil {
		if isMounted(target) {
			return SecondaryMount{}, fmt.Errorf("unmount %s (it stays mounted): %w", target, err)
		}
	}
	os.Remove(target) // only an empty folder goes
	m.log.Info("secondary file system unmounted", zap.String("mount_point", target), zap.String("source", was.Source))
	return was, nil
}

// SecondaryMounts are the file systems mounted at dir/<name>, by name.
func (m *Manager) SecondaryMounts(dir string) ([]SecondaryMount, error) {
	if err := m.checkSecondaryDir(dir); err != nil {
		return nil, classify(ErrBadInput, err)
	}
	table, err := ReadMountInfo()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []SecondaryMount
	for _, mi := range table {
		if filepath.Dir(mi.MountPoint) != dir || seen[mi.MountPoint] || CheckSecondaryName(filepath.Base(mi.MountPoint)) != nil {
			continue
		}
		seen[mi.MountPoint] = true
		if top, ok := topMount(table, mi.MountPoint); ok {
			out = append(out, m.secondaryOf(top))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Manager) secondaryOf(mi MountInfo) SecondaryMount {
	s := SecondaryMount{Name: filepath.Base(mi.MountPoint), MountPoint: mi.MountPoint, Source: mi.Source, FSType: mi.FSType, Options: mi.Options}
	s.Size, s.Free, _ = m.stat.size(mi.MountPoint)
	return s
}

// sameSource reports whether the mount mi is of src: the same export, or
// the same block device (by device number: /dev/disk/by-... names too).
func sameSource(mi MountInfo, src Source) bool {
	switch src.Kind {
	case NFS:
		return strings.TrimSuffix(mi.Source, "/") == strings.TrimSuffix(src.Host+":"+src.Path, "/") && strings.HasPrefix(mi.FSType, "nfs")
	case BlockDevice:
		var st unix.Stat_t
		if err := unix.Stat(src.Path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return false
		}
		return unix.Major(uint64(st.Rdev)) == mi.Major && unix.Minor(uint64(st.Rdev)) == mi.Minor
	}
	return false
}

// mkdirReal makes dir (0755) if it is missing; it must be a directory,
// not a symbolic link to one.
func mkdirReal(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (a symbolic link?): secondary mounts need a real one", dir)
	}
	return nil
}

// mkdirEmpty makes the mount point p, or checks that the existing one is
// an empty real directory; made says it was made here.
func mkdirEmpty(p string) (made bool, err error) {
	if err := os.Mkdir(p, 0o755); err == nil {
		return true, nil
	} else if !errors.Is(err, os.ErrExist) {
		return false, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, classify(ErrConfigured, fmt.Errorf("%s exists and is not a directory", p))
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		return false, classify(ErrConfigured, fmt.Errorf("%s is not empty: a file system is mounted only on an empty folder", p))
	}
	return false, nil
}
