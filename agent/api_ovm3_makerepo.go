package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/blockdev"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// ovm3CreateRepoMethods: agent 3's create_repository on the repository
// manager's Make (what ovs-makerepo does), with the manager's UUID.
func (a *Agent) ovm3CreateRepoMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	return []xmlrpc.Def{
		{Name: "create_repository", Result: xmlrpc.Nil, Run: a.ovm3CreateRepo,
			Params: []xmlrpc.Param{str("fs_location"), str("mount_point"), str("repo_uuid"), xmlrpc.Opt("repo_alias", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: make fs_location a new repository with the id repo_uuid (32 hexadecimal digits, dashes allowed) and the alias as its description, as ovs-makerepo does, mount it, and make agent 3's folders in it (VirtualMachines, VirtualDisks, ISOs, Templates, Assemblies); mount_point must be /OVS/Repositories/<repo_uuid without dashes>. fs_location is an NFS export (host:/export), a block device that [agent] block_devices allows and the host does not use, or a folder inside [agent] file_dirs; it must not be a repository already (add_repository adds one), and the id must not be taken. A refused call changes nothing."},
	}
}

// ovm3Source checks a file system location a manager asks the agent to
// make a repository of or mount, and returns the source to give the
// repository manager: an NFS export as given; a block device that
// [agent] block_devices allows and the host does not use; a folder
// inside [agent] file_dirs (resolved, so a symbolic link cannot lead
// elsewhere). Anything else would let a caller write the pool folders
// into any directory of the host, or mount over it.
func (a *Agent) ovm3Source(method, loc string) (repository.Source, error) {
	src, err := repository.ParseSource(loc)
	if err != nil {
		return src, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %v", method, err)
	}
	switch src.Kind {
	case repository.BlockDevice:
		if err := (blockdev.Host{}).Check(src.Path, a.blockDevices()); err != nil {
			return src, xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %v", method, err)
		}
	case repository.LocalDir:
		var dirs []string
		if s := a.state.Load(); s != nil && s.cfg != nil {
			dirs = s.cfg.Agent.FileDirs
		}
		real, err := fileaccess.Resolve(dirs, src.Path)
		if errors.Is(err, fileaccess.ErrOutside) {
			return src, xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s is not inside [agent] file_dirs (%s); a local folder becomes a repository over the API only there (on the host, ovs-makerepo takes any)", method, loc, strings.Join(dirs, " "))
		}
		if err != nil {
			return src, fileFault(method+" "+loc, err)
		}
		if src, err = repository.ParseSource(real); err != nil {
			return src, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %v", method, err)
		}
	}
	return src, nil
}

// ovm3MountPointID is the repository id a /OVS/Repositories/<id> mount
// point names.
func ovm3MountPointID(method, mp string) (string, error) {
	rest, ok := strings.CutPrefix(mp, ovm3RepoPrefix)
	id, err := ovm3.RepoID(rest)
	if !ok || err != nil {
		return "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: mount point %q: want /OVS/Repositories/<repository id> (repositories are mounted at [repository] root/<uuid> and named so by these calls)", method, mp)
	}
	return id, nil
}

func (a *Agent) ovm3CreateRepo(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	const method = "create_repository"
	uuid := args.String(2)
	if err := repository.CheckUUID(uuid); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: repo_uuid: %v", method, err)
	}
	id, err := ovm3MountPointID(method, args.String(1))
	if err != nil {
		return nil, err
	}
	if want, _ := ovm3.RepoID(uuid); want != id {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: mount point %s names repository %s, repo_uuid is %s: they must be the same id", method, args.String(1), id, want)
	}
	src, err := a.ovm3Source(method, args.String(0))
	if err != nil {
		return nil, err
	}
	shared := repository.SharedLocal
	if src.Kind == repository.NFS {
		shared = repository.SharedYes
	}
	st, err := a.repos.Make(ctx, repository.MakeRequest{Source: src.Raw, Shared: shared, Description: args.StringOr(3, ""), UUID: uuid})
	if err != nil {
		if st.UUID != "" {
			return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: repository %s was made but %v", method, st.UUID, err)
		}
		return nil, addFault(err, repoStateFault)
	}
	if st.State != repository.StateMounted {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: repository %s was made but is %s: %s", method, st.UUID, st.State, st.Error)
	}
	// Agent 3's folders beside the pool folders ovs-makerepo makes.
	root, err := os.OpenRoot(st.MountPoint)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: repository %s was made, but its folders were not: %v", method, st.UUID, err)
	}
	defer root.Close()
	for _, d := range ovm3Folders {
		if err := root.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: repository %s was made, but its folder %s was not: %v", method, st.UUID, d, err)
		}
	}
	return nil, nil
}

// ovm3Folders are the folders of an agent 3 repository.
var ovm3Folders = []string{ovm3.VirtualMachines, ovm3.VirtualDisks, ovm3.ISOs, "Templates", "Assemblies"}
