package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// ovm3FilePlugins are the agent 3 storage plugins whose file calls work on
// a mounted file system; on this agent they act on files inside the
// repositories.
var ovm3FilePlugins = map[string]bool{
	"oracle.generic.NFSPlugin.GenericNFSPlugin": true,
	"oracle.ocfs2.OCFS2.OCFS2Plugin":            true,
}

// ovm3StorageMethods: the storage plugin's file calls (create, destroy,
// getFileInfo) on files inside the repositories mounted here. Mounting
// and discovering storage through the plugins is not served.
func (a *Agent) ovm3StorageMethods() []xmlrpc.Def {
	head := []xmlrpc.Param{xmlrpc.Req("plugin", xmlrpc.String), xmlrpc.Req("storage_server", xmlrpc.Struct), xmlrpc.Req("storage_details", xmlrpc.Struct)}
	with := func(p ...xmlrpc.Param) []xmlrpc.Param { return append(append([]xmlrpc.Param{}, head...), p...) }
	return []xmlrpc.Def{
		{Name: "storage_plugin_create", Result: xmlrpc.Struct, Run: a.ovm3StorageCreate,
			Params: with(xmlrpc.Req("file", xmlrpc.String), xmlrpc.Req("type", xmlrpc.String), xmlrpc.Req("size", xmlrpc.Int)),
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): create a new sparse file of size bytes (type File) or a folder (type Directory) at file, inside a repository mounted here; answers its properties {fr_type, file_path, file_sz, ondisk_sz, fs_uuid}."},
		{Name: "storage_plugin_destroy", Result: xmlrpc.Nil, Run: a.ovm3StorageDestroy,
			Params: with(xmlrpc.Req("file_properties", xmlrpc.Struct)),
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): remove the regular file file_properties.file_path, inside a repository mounted here; refused while a running domain uses it."},
		{Name: "storage_plugin_getFileInfo", Result: xmlrpc.Struct, Run: a.ovm3StorageInfo,
			Params: with(xmlrpc.Req("file_properties", xmlrpc.Struct)),
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): the properties of file_properties.file_path, inside a repository mounted here: {fr_type, file_path, file_sz, ondisk_sz, fs_uuid}, sizes in bytes as strings."},
	}
}

// storagePath checks the plugin and resolves a path named by a storage
// call inside the repositories.
func (a *Agent) storagePath(method string, args xmlrpc.Args, name string) (string, error) {
	if !ovm3FilePlugins[args.String(0)] {
		return "", xmlrpc.Faultf(xmlrpc.Unsupported, "%s: storage plugin %q is not served here; the file calls work with oracle.generic.NFSPlugin.GenericNFSPlugin and oracle.ocfs2.OCFS2.OCFS2Plugin, on files inside the repositories", method, args.String(0))
	}
	if err := a.needRepos(); err != nil {
		return "", err
	}
	roots := a.repos.MountPoints()
	p := a.ovm3Paths().internal(name)
	if !lexicallyIn(roots, p) {
		return "", xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s is outside the repositories mounted here (/OVS/Repositories/<id>/...)", method, name)
	}
	real, err := fileaccess.Resolve(roots, p)
	if errors.Is(err, fileaccess.ErrOutside) {
		return "", xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s is outside the repositories mounted here (/OVS/Repositories/<id>/...)", method, name)
	}
	if err != nil {
		return "", fileFault(method+" "+name, err)
	}
	return real, nil
}

func fileProps(kind, name string, fi os.FileInfo, fsUUID string) map[string]any {
	ondisk := int64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ondisk = st.Blocks * 512
	}
	return map[string]any{"fr_type": kind, "file_path": name, "file_sz": strconv.FormatInt(fi.Size(), 10),
		"ondisk_sz": strconv.FormatInt(ondisk, 10), "fs_uuid": fsUUID}
}

func detailsUUID(args xmlrpc.Args) string {
	u, _ := args.Struct(2)["uuid"].(string)
	return u
}

func (a *Agent) ovm3StorageCreate(_ context.Context, args xmlrpc.Args) (any, error) {
	name, kind, size := args.String(3), args.String(4), args.Int(5)
	real, err := a.storagePath("storage_plugin_create", args, name)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "File":
		if size < 0 || size > 1<<50 {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "storage_plugin_create: size %d: give 0 to 2^50 bytes", size)
		}
		f, err := os.OpenFile(real, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			return nil, fileFault("storage_plugin_create "+name, err)
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			os.Remove(real)
			return nil, fileFault("storage_plugin_create "+name, err)
		}
		if err := f.Close(); err != nil {
			os.Remove(real)
			return nil, fileFault("storage_plugin_create "+name, err)
		}
	case "Directory":
		if err := os.Mkdir(real, 0o755); err != nil {
			return nil, fileFault("storage_plugin_create "+name, err)
		}
	default:
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "storage_plugin_create: type %q: want File or Directory", kind)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return nil, fileFault("storage_plugin_create "+name, err)
	}
	return fileProps(kind, name, fi, detailsUUID(args)), nil
}

func filePath(args xmlrpc.Args) (string, error) {
	p, ok := args.Struct(3)["file_path"].(string)
	if !ok || p == "" {
		return "", xmlrpc.Faultf(xmlrpc.BadParams, "file_properties.file_path: want the file's path, a string")
	}
	return p, nil
}

func (a *Agent) ovm3StorageDestroy(_ context.Context, args xmlrpc.Args) (any, error) {
	name, err := filePath(args)
	if err != nil {
		return nil, err
	}
	real, err := a.storagePath("storage_plugin_destroy", args, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return nil, fileFault("storage_plugin_destroy "+name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "storage_plugin_destroy: %s is not a regular file", name)
	}
	if users := a.domainsUsingFile(real); len(users) > 0 {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "storage_plugin_destroy: %s is a disk of running domain %s", name, users[0])
	}
	if err := os.Remove(real); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fileFault("storage_plugin_destroy "+name, err)
	}
	return nil, nil
}

func (a *Agent) ovm3StorageInfo(_ context.Context, args xmlrpc.Args) (any, error) {
	name, err := filePath(args)
	if err != nil {
		return nil, err
	}
	real, err := a.storagePath("storage_plugin_getFileInfo", args, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return nil, fileFault("storage_plugin_getFileInfo "+name, err)
	}
	kind := "File"
	if fi.IsDir() {
		kind = "Directory"
	}
	return fileProps(kind, name, fi, detailsUUID(args)), nil
}

// domainsUsingFile names the live domains whose vm.cfg has path as a
// disk (compared after symlinks are resolved).
func (a *Agent) domainsUsingFile(path string) []string {
	var out []string
	for _, in := range a.domains.List(false) {
		if !live(in.State) && in.State != "suspended" {
			continue
		}
		cfg, err := vmcfg.ParseFile(in.ConfigFile)
		if err != nil {
			continue
		}
		for _, d := range cfg.Disks {
			p := d.Path
			if r, err := filepath.EvalSymlinks(p); err == nil {
				p = r
			}
			if p == path {
				out = append(out, in.Name)
				break
			}
		}
	}
	return out
}
