package repository

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/uuid"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/internal/sparsecopy"
)

// Template is a guest template: a folder seed_pool/NAME with a vm.cfg.
type Template struct {
	Name string `xmlrpc:"name" json:"name"`
	Path string `xmlrpc:"path" json:"path"` // the folder
	Size int64  `xmlrpc:"size" json:"size"` // bytes in its files (apparent size)
	// From its vm.cfg, when it parses:
	Memory int `xmlrpc:"memory" json:"memory"` // MiB
	VCPUs  int `xmlrpc:"vcpus" json:"vcpus"`
	// Error says why vm.cfg does not parse; such a template cannot be used.
	Error string `xmlrpc:"error" json:"error"`
}

// ISO is an ISO image in iso_pool.
type ISO struct {
	Name string `xmlrpc:"name" json:"name"`
	Path string `xmlrpc:"path" json:"path"`
	Size int64  `xmlrpc:"size" json:"size"`
}

// ListTemplates lists the templates of the repository mounted at dir:
// the folders seed_pool/NAME that hold a vm.cfg, by name. Symbolic links
// are followed only inside the repository.
func ListTemplates(dir string) ([]Template, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	defer root.Close()
	names, err := readDirNames(root, SeedPool)
	if err != nil {
		return nil, fmt.Errorf("list templates in %s: %w", dir, err)
	}
	out := []Template{}
	for _, n := range names {
		tdir := SeedPool + "/" + n
		if st, err := root.Stat(tdir); err != nil || !st.IsDir() {
			continue
		}
		cfgPath := tdir + "/vm.cfg"
		if st, err := root.Stat(cfgPath); err != nil || !st.Mode().IsRegular() {
			continue
		}
		t := Template{Name: n, Path: dir + "/" + tdir}
		if files, err := readDirNames(root, tdir); err == nil {
			for _, f := range files {
				if st, err := root.Stat(tdir + "/" + f); err == nil && st.Mode().IsRegular() {
					t.Size += st.Size()
				}
			}
		}
		if data, err := boundedfile.ReadFileIn(root, cfgPath, vmcfg.MaxFileSize); err != nil {
			t.Error = err.Error()
		} else if c, err := vmcfg.Parse(t.Path+"/vm.cfg", data); err != nil {
			t.Error = err.Error()
		} else {
			t.Memory, t.VCPUs = c.Memory, c.VCPUs
		}
		out = append(out, t)
	}
	return out, nil
}

// ListISOs lists the ISO images (iso_pool/*.iso, any case) of the
// repository mounted at dir, by name.
func ListISOs(dir string) ([]ISO, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("list ISO images: %w", err)
	}
	defer root.Close()
	names, err := readDirNames(root, ISOPool)
	if err != nil {
		return nil, fmt.Errorf("list ISO images in %s: %w", dir, err)
	}
	out := []ISO{}
	for _, n := range names {
		if !strings.EqualFold(path.Ext(n), ".iso") {
			continue
		}
		st, err := root.Stat(ISOPool + "/" + n)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		out = append(out, ISO{Name: n, Path: dir + "/" + ISOPool + "/" + n, Size: st.Size()})
	}
	return out, nil
}

// readDirNames lists a folder inside root, sorted; a missing folder is
// empty.
func readDirNames(root *os.Root, name string) ([]string, error) {
	d, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// CheckDomainName checks a name for a domain folder (and the domain): 1
// to 64 letters, digits, '_', '.' and '-', not starting with '.' or '-',
// as vm.cfg names.
func CheckDomainName(name string) error {
	if name == "" || len(name) > vmcfg.MaxNameLen {
		return fmt.Errorf("name %q: want 1 to %d characters", clip(name, 80), vmcfg.MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("name %q: only letters, digits, '_', '.' and '-' are allowed", clip(name, 80))
		}
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("name %q may not start with '.' or '-'", name)
	}
	return nil
}

// checkEntryName checks a name that must be one entry of a folder.
func checkEntryName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("%s %q is not a name in a folder", what, clip(name, 80))
	}
	return nil
}

// Created describes a domain folder made from a template.
type Created struct {
	Name  string   `xmlrpc:"name" json:"name"`
	Dir   string   `xmlrpc:"dir" json:"dir"`       // running_pool/NAME, absolute
	VMCfg string   `xmlrpc:"vm_cfg" json:"vm_cfg"` // its vm.cfg
	UUID  string   `xmlrpc:"uuid" json:"uuid"`
	MACs  []string `xmlrpc:"macs" json:"macs"`   // one per vif, in order
	Files []string `xmlrpc:"files" json:"files"` // copied from the template
}

// CreateFromTemplate makes the domain folder running_pool/NAME in the
// repository mounted at dir from the template seed_pool/TEMPLATE: it
// copies the template's files (sparse files stay sparse) and writes its
// vm.cfg with name NAME, a fresh UUID, a fresh 00:16:3e MAC on every
// vif (none used by another domain of the repository) and disk, kernel
// and ramdisk paths that pointed into a folder named TEMPLATE pointing
// into the new folder instead. Comments and layout of vm.cfg are kept when the edited file
// parses back to the intended configuration; otherwise vm.cfg is written
// in vmcfg's canonical form. Nothing outside the repository is read or
// written (os.Root: symbolic links may not leave it). On failure the new
// folder is removed.
func CreateFromTemplate(ctx context.Context, dir, template, name string) (Created, error) {
	if err := checkEntryName("template", template); err != nil {
		return Created{}, fmt.Errorf("create from template: %w", err)
	}
	if err := CheckDomainName(name); err != nil {
		return Created{}, fmt.Errorf("create from template: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Created{}, fmt.Errorf("create from template: %w", err)
	}
	defer root.Close()
	t, err := readTemplate(root, dir, template)
	if err != nil {
		return Created{}, err
	}
	used, err := usedMACs(root)
	if err != nil {
		return Created{}, fmt.Errorf("create from template %s: %w", template, err)
	}

	ddir := RunningPool + "/" + name
	if err := makeDomainDir(root, dir, ddir); err != nil {
		return Created{}, err
	}
	ok := false
	defer func() {
		if !ok {
			root.RemoveAll(ddir)
		}
	}()

	res := Created{Name: name, Dir: dir + "/" + ddir, VMCfg: dir + "/" + ddir + "/vm.cfg"}
	copied, err := t.copyFiles(ctx, root, ddir, &res)
	if err != nil {
		return Created{}, err
	}
	want, err := t.domainConfig(name, used, copied, &res)
	if err != nil {
		return Created{}, err
	}
	out := vmcfg.Render(t.orig, want)
	if err := root.WriteFile(ddir+"/vm.cfg", out, 0o644); err != nil {
		return Created{}, fmt.Errorf("create from template: %w", err)
	}
	ok = true
	return res, nil
}

// seedTemplate is a template read for CreateFromTemplate.
type seedTemplate struct {
	name  string
	dir   string // seed_pool/NAME, inside the repository
	orig  []byte // its vm.cfg
	cfg   *vmcfg.Config
	files []string
}

// readTemplate reads the template seed_pool/name of the repository at
// dir (root): its vm.cfg, parsed, and the names of its files.
func readTemplate(root *os.Root, dir, name string) (*seedTemplate, error) {
	t := &seedTemplate{name: name, dir: SeedPool + "/" + name}
	if st, err := root.Stat(t.dir); err != nil {
		return nil, fmt.Errorf("create from template: template %s: %w", name, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("create from template: %s/%s is not a folder", dir, t.dir)
	}
	var err error
	if t.orig, err = boundedfile.ReadFileIn(root, t.dir+"/vm.cfg", vmcfg.MaxFileSize); err != nil {
		return nil, fmt.Errorf("create from template %s: vm.cfg: %w", name, err)
	}
	if t.cfg, err = vmcfg.Parse(dir+"/"+t.dir+"/vm.cfg", t.orig); err != nil {
		return nil, fmt.Errorf("create from template %s: %w", name, err)
	}
	if t.files, err = readDirNames(root, t.dir); err != nil {
		return nil, fmt.Errorf("create from template %s: %w", name, err)
	}
	return t, nil
}

// makeDomainDir makes the new domain folder ddir (running_pool/NAME) of
// the repository at dir (root); it must not exist yet.
func makeDomainDir(root *os.Root, dir, ddir string) error {
	if err := root.MkdirAll(RunningPool, 0o755); err != nil {
		return fmt.Errorf("create from template: %w", err)
	}
	if err := root.Mkdir(ddir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create from template: %s/%s exists already", dir, ddir)
		}
		return fmt.Errorf("create from template: %w", err)
	}
	return nil
}

// copyFiles copies the template's regular files but vm.cfg into ddir,
// lists them in res.Files and returns them as a set.
func (t *seedTemplate) copyFiles(ctx context.Context, root *os.Root, ddir string, res *Created) (map[string]bool, error) {
	copied := map[string]bool{}
	for _, f := range t.files {
		if f == "vm.cfg" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("create from template: %w", err)
		}
		st, err := root.Stat(t.dir + "/" + f)
		if err != nil {
			return nil, fmt.Errorf("create from template %s: %s: %w", t.name, f, err)
		}
		if !st.Mode().IsRegular() {
			continue // folders, devices, sockets: not part of a template
		}
		if err := copyFileIn(ctx, root, t.dir+"/"+f, ddir+"/"+f, st.Mode().Perm()); err != nil {
			return nil, fmt.Errorf("create from template %s: %w", t.name, err)
		}
		copied[f] = true
		res.Files = append(res.Files, f)
	}
	return copied, nil
}

// domainConfig is the template's configuration for the new domain: its
// name, a fresh UUID, a fresh MAC (not in used) on every vif and the disk,
// kernel and ramdisk paths that pointed into the template's folder
// pointing into res.Dir.
// It fills res.UUID and res.MACs.
func (t *seedTemplate) domainConfig(name string, used, copied map[string]bool, res *Created) (*vmcfg.Config, error) {
	want := *t.cfg
	want.Name = name
	var err error
	if want.UUID, err = uuid.New(); err != nil {
		return nil, err
	}
	want.VIFs = append([]vmcfg.VIF(nil), t.cfg.VIFs...)
	for i := range want.VIFs {
		v := &want.VIFs[i]
		mac, err := NewMAC(used)
		if err != nil {
			return nil, err
		}
		used[mac] = true
		params := map[string]string{}
		for k, val := range v.Params {
			params[k] = val
		}
		params["mac"] = mac
		v.MAC, v.Params = mac, params
		res.MACs = append(res.MACs, mac)
	}
	// A path into the template's folder points into the new folder: the
	// disks', and an operating system's kernel and ramdisk.
	inNewFolder := func(p *string) {
		if *p == "" || !path.IsAbs(*p) {
			return // relative paths are relative to the new folder already
		}
		c := path.Clean(*p)
		if copied[path.Base(c)] && path.Base(path.Dir(c)) == t.name {
			*p = res.Dir + "/" + path.Base(c)
		}
	}
	want.Disks = append([]vmcfg.Disk(nil), t.cfg.Disks...)
	for i := range want.Disks {
		inNewFolder(&want.Disks[i].Path)
	}
	inNewFolder(&want.Kernel)
	inNewFolder(&want.Ramdisk)
	res.UUID = want.UUID
	return &want, nil
}

// usedMACs collects the MAC addresses of the domains in running_pool.
func usedMACs(root *os.Root) (map[string]bool, error) {
	used := map[string]bool{}
	names, err := readDirNames(root, RunningPool)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		data, err := boundedfile.ReadFileIn(root, RunningPool+"/"+n+"/vm.cfg", vmcfg.MaxFileSize)
		if err != nil {
			continue
		}
		c, err := vmcfg.Parse(n, data)
		if err != nil {
			continue
		}
		for _, v := range c.VIFs {
			if v.MAC != "" {
				used[normalMAC(v.MAC)] = true
			}
		}
	}
	return used, nil
}

// copyFileIn copies a regular file inside root to a new file, keeping
// holes (sparsecopy.Copy).
func copyFileIn(ctx context.Context, root *os.Root, from, to string, perm fs.FileMode) error {
	src, err := root.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := root.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := sparsecopy.Copy(ctx, dst, src, st.Size()); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return dst.Close()
}

// Templates lists the templates of a mounted repository.
func (m *Manager) Templates(uuid string) ([]Template, error) {
	dir, err := m.mountedDir(uuid)
	if err != nil {
		return nil, err
	}
	return ListTemplates(dir)
}

// ISOs lists the ISO images of a mounted repository.
func (m *Manager) ISOs(uuid string) ([]ISO, error) {
	dir, err := m.mountedDir(uuid)
	if err != nil {
		return nil, err
	}
	return ListISOs(dir)
}

// CreateFromTemplate makes running_pool/NAME from seed_pool/TEMPLATE in a
// mounted repository (see the function CreateFromTemplate).
func (m *Manager) CreateFromTemplate(ctx context.Context, uuid, template, name string) (Created, error) {
	dir, err := m.mountedDir(uuid)
	if err != nil {
		return Created{}, err
	}
	return CreateFromTemplate(ctx, dir, template, name)
}

func (m *Manager) mountedDir(uuid string) (string, error) {
	if err := CheckUUID(uuid); err != nil {
		return "", err
	}
	if _, err := m.Status(context.Background()); err != nil {
		return "", err
	}
	dir, ok := m.MountPoint(uuid)
	if !ok {
		return "", fmt.Errorf("repository %s is not mounted", uuid)
	}
	return dir, nil
}
