package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3CSFileMethods are the file calls of CloudStack's agent module
// (cloudstack.py) that its storage processor makes around copy_file: a
// folder made on the secondary storage before a template or snapshot is
// copied there, a file looked for. Both stay inside the repositories and
// the storage plugin's secondary mounts, as copy_file does.
func (a *Agent) ovm3CSFileMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "ovs_mkdirs", Result: xmlrpc.Nil, Run: a.ovm3Mkdirs,
			Params: []xmlrpc.Param{xmlrpc.Req("dir", xmlrpc.String), xmlrpc.Opt("mode", xmlrpc.Int)},
			Help:   "CloudStack's agent module: make the folder dir and its missing parents (mode, default 0700, at most 0777) inside a repository or a file system mounted at /nfsmnt/<name>; answers nil when it made it and true when it was there, as the module does."},
		{Name: "ovs_check_file", Result: xmlrpc.Boolean, Params: []xmlrpc.Param{xmlrpc.Req("file", xmlrpc.String)}, Run: a.ovm3CheckFile,
			Help: "CloudStack's agent module: whether file is a regular file, inside a repository or a file system mounted at /nfsmnt/<name> (a path elsewhere is refused)."},
	}
}

// ovm3StorageRoot opens the repository or secondary mount that holds the
// agent 3 path name, and returns name's path inside it.
func (a *Agent) ovm3StorageRoot(method, name string) (*os.Root, string, error) {
	if err := a.needRepos(); err != nil {
		return nil, "", err
	}
	p := a.ovm3Paths().internal(name)
	roots := append(a.repos.MountPoints(), a.secondaryRoots()...)
	if !lexicallyIn(roots, p) {
		return nil, "", xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s is outside the repositories (/OVS/Repositories/<id>/...) and the file systems mounted at /nfsmnt/<name>", method, name)
	}
	p = filepath.Clean(p)
	best := ""
	for _, r := range roots {
		if r = filepath.Clean(r); len(r) > len(best) && lexicallyIn([]string{r}, p) {
			best = r
		}
	}
	rel, err := filepath.Rel(best, p)
	if err != nil {
		return nil, "", xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
	}
	root, err := os.OpenRoot(best)
	if err != nil {
		return nil, "", fileFault(method, err)
	}
	return root, rel, nil
}

func (a *Agent) ovm3Mkdirs(_ context.Context, args xmlrpc.Args) (any, error) {
	const method = "ovs_mkdirs"
	mode := int64(0o700)
	if args.Has(1) {
		mode = int64(args.Int(1))
	}
	if mode < 0 || mode > 0o777 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: mode %#o: give permission bits, 0 to 0777", method, mode)
	}
	root, rel, err := a.ovm3StorageRoot(method, args.String(0))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if fi, err := root.Stat(rel); err == nil {
		if !fi.IsDir() {
			return nil, xmlrpc.Faultf(xmlrpc.Exists, "%s: %s exists and is not a folder", method, args.String(0))
		}
		return true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ovm3FileFault(method, args.String(0), err)
	}
	if err := root.MkdirAll(rel, fs.FileMode(mode)); err != nil {
		return nil, ovm3FileFault(method, args.String(0), err)
	}
	return nil, nil
}

func (a *Agent) ovm3CheckFile(_ context.Context, args xmlrpc.Args) (any, error) {
	const method = "ovs_check_file"
	root, rel, err := a.ovm3StorageRoot(method, args.String(0))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return nil, ovm3FileFault(method, args.String(0), err)
	}
	return fi.Mode().IsRegular(), nil
}

// ovm3FileFault is the fault of a file operation on an agent 3 path; an
// escape through a symbolic link, which os.Root refuses with an error of
// its own (not exported: known by its text), is refused as outside.
func ovm3FileFault(method, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s leads outside its repository or mount (a symbolic link)", method, name)
	}
	return fileFault(fmt.Sprintf("%s %s:", method, name), err)
}
