package agent

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// ovm3RepoMethods are agent 3's repository reads, over the repositories
// this agent mounts (repository.list).
func (a *Agent) ovm3RepoMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "discover_repositories", Result: xmlrpc.String, Run: a.ovm3DiscoverRepos,
			Params: []xmlrpc.Param{{Name: "repo_ids", Type: xmlrpc.String, Or: []xmlrpc.Type{xmlrpc.Array}, Optional: true}},
			Help:   "Oracle VM Agent 3: the mounted repositories named (an id, or an array of ids; every mounted one when none) as an XML document in a string: Discover_Repositories_Result/RepositoryList/Repository[@Name] with Repository_UUID, Repository_Alias (its description), Version, and the agent 3 folders' contents: Templates/Template[@Name]/File, VirtualMachines/VirtualMachine[@Name]/File, VirtualDisks/Disk, ISOs/ISO."},
		{Name: "discover_repository_db", Result: xmlrpc.String, Run: a.ovm3DiscoverRepoDB,
			Help: "Oracle VM Agent 3: every repository this host is configured with, as an XML document in a string: Discover_Repository_Db_Result/RepositoryDbList/Repository[@Uuid] with Fs_location (its source), Mount_point (/OVS/Repositories/<id>), Filesystem_type, Version, Alias, Status (Mounted or Unmounted)."},
	}
}

// mountTypes maps mount points to their file system types.
func mountTypes() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return out
	}
	for _, m := range ovm3.ParseMounts(data) {
		out[filepath.Clean(m.Dir)] = m.Type
	}
	return out
}

func (a *Agent) ovm3DiscoverRepoDB(ctx context.Context, _ xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	rep, _ := a.repos.Status(ctx)
	types := mountTypes()
	var out []ovm3.RepoDB
	for _, r := range rep.Repositories {
		id, err := ovm3.RepoID(r.UUID)
		if err != nil {
			continue
		}
		st := "Unmounted"
		if r.State == repository.StateMounted || r.State == repository.StateInUse {
			st = "Mounted"
		}
		out = append(out, ovm3.RepoDB{ID: id, FsLocation: r.Source, MountPoint: ovm3RepoPrefix + id,
			FsType: types[filepath.Clean(r.MountPoint)], Version: strconv.Itoa(repository.MetadataVersion), Alias: r.Description, Status: st})
	}
	doc, err := ovm3.DiscoverRepositoryDB(out)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

func (a *Agent) ovm3DiscoverRepos(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	want := []string(nil) // nil: every mounted repository
	if args.Has(0) {
		switch v := args.All()[0].(type) {
		case []any:
			for _, x := range v {
				s, ok := x.(string)
				if !ok {
					return nil, xmlrpc.Faultf(xmlrpc.BadParams, "discover_repositories: the ids must be strings, got %T", x)
				}
				want = append(want, s)
			}
		case string:
			want = []string{v}
		}
	}
	pm := a.ovm3Paths()
	rep, _ := a.repos.Status(ctx)
	alias := map[string]string{}
	for _, r := range rep.Repositories {
		if id, err := ovm3.RepoID(r.UUID); err == nil {
			alias[id] = r.Description
		}
	}
	if want == nil {
		for id := range pm.mounts {
			want = append(want, id)
		}
		sort.Strings(want)
	}
	var out []ovm3.Repo
	for _, w := range want {
		id, err := ovm3.RepoID(w)
		if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
		}
		mp, ok := pm.mounts[id]
		if !ok {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "no repository %s is mounted on this host", id)
		}
		r := ovm3.Repo{ID: id, Version: strconv.Itoa(repository.MetadataVersion), Alias: alias[id]}
		r.Templates = folderFiles(mp, "Templates", "")
		r.VMs = folderFiles(mp, ovm3.VirtualMachines, "vm.cfg")
		r.Disks = plainFiles(mp, ovm3.VirtualDisks)
		r.ISOs = plainFiles(mp, ovm3.ISOs)
		out = append(out, r)
	}
	doc, err := ovm3.DiscoverRepositories(out)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

// folderLimit bounds how many entries of one folder are listed.
const folderLimit = 10000

// folderFiles lists the folders of mount/folder with the first regular
// file in each (only want, when given), inside the repository.
func folderFiles(mount, folder, want string) []ovm3.RepoFile {
	root, err := os.OpenRoot(mount)
	if err != nil {
		return nil
	}
	defer root.Close()
	dir, err := root.Open(folder)
	if err != nil {
		return nil
	}
	defer dir.Close()
	ents, _ := dir.ReadDir(folderLimit)
	var out []ovm3.RepoFile
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub, err := root.Open(filepath.Join(folder, e.Name()))
		if err != nil {
			continue
		}
		files, _ := sub.ReadDir(folderLimit)
		sub.Close()
		for _, f := range files {
			if f.Type().IsRegular() && (want == "" || f.Name() == want) {
				out = append(out, ovm3.RepoFile{Name: e.Name(), File: f.Name()})
				break
			}
		}
	}
	return out
}

// plainFiles lists the regular files of mount/folder, inside the
// repository.
func plainFiles(mount, folder string) []string {
	root, err := os.OpenRoot(mount)
	if err != nil {
		return nil
	}
	defer root.Close()
	dir, err := root.Open(folder)
	if err != nil {
		return nil
	}
	defer dir.Close()
	ents, _ := dir.ReadDir(folderLimit)
	var out []string
	for _, e := range ents {
		// hidden files are not the repository's (an import's partial file)
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// ovm3RepoChangeMethods: agent 3's add_repository, mount_repository_fs,
// delete_repository and unmount_repository_fs on repository.add and
// repository.remove. Agent 3 mounts a bare file system with
// mount_repository_fs and registers the repository on it with
// add_repository; this agent mounts repositories only, so both add the
// repository the file system holds, and the second finds it added.
func (a *Agent) ovm3RepoChangeMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "add_repository", Result: xmlrpc.Nil, Run: a.ovm3AddRepo,
			Params: []xmlrpc.Param{xmlrpc.Req("fs_location", xmlrpc.String), xmlrpc.Req("mount_point", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: add the existing repository at fs_location (an NFS export, a block device or a local folder holding a .ovsrepo) with repository.add; mount_point must be /OVS/Repositories/<its id> (it is mounted at [repository] root/<uuid> and named so by these calls). A mismatch is refused and nothing stays added; the same repository added already from fs_location (by mount_repository_fs) is no error."},
		{Name: "mount_repository_fs", Result: xmlrpc.Nil, Run: a.ovm3MountRepoFS,
			Params: []xmlrpc.Param{xmlrpc.Req("fs_location", xmlrpc.String), xmlrpc.Req("mount_point", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: mount the file system at fs_location on mount_point, /OVS/Repositories/<id>: here, add the repository it holds, which must be that id (repository.add), as add_repository does; fs_location is confined as create_repository's (an NFS export, a block device [agent] block_devices allows, a folder inside [agent] file_dirs). A file system that holds no repository is refused, changing nothing: this agent mounts only repositories, and create_repository makes one."},
		{Name: "unmount_repository_fs", Result: xmlrpc.Nil, Run: a.ovm3UnmountRepoFS,
			Params: []xmlrpc.Param{xmlrpc.Req("mount_point", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: unmount the repository at mount_point (/OVS/Repositories/<id>) and remove it from the repositories files (repository.remove, as delete_repository); refused while running domains use it. Its contents stay."},
		{Name: "delete_repository", Result: xmlrpc.Nil, Run: a.ovm3DeleteRepo,
			Params: []xmlrpc.Param{xmlrpc.Req("repo_uuid", xmlrpc.String), xmlrpc.Opt("erase", xmlrpc.Boolean)},
			Help:   "Oracle VM Agent 3: unmount the repository and remove it from the repositories files (repository.remove; refused while running domains use it). Its contents stay: erase is refused."},
	}
}

func (a *Agent) ovm3AddRepo(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	mp := args.String(1)
	rest, ok := strings.CutPrefix(mp, ovm3RepoPrefix)
	id, err := ovm3.RepoID(rest)
	if !ok || err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "add_repository: mount_point %q: want /OVS/Repositories/<repository id>", mp)
	}
	rep, _ := a.repos.Status(ctx)
	if st, ok := findRepo(rep, id); ok && st.Source == args.String(0) {
		return nil, nil // added already (mount_repository_fs)
	}
	if _, err := a.addAs(ctx, "add_repository", args.String(0), "", id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Agent) ovm3MountRepoFS(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "mount_repository_fs"
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	id, err := ovm3MountPointID(method, args.String(1))
	if err != nil {
		return nil, err
	}
	loc := args.String(0)
	rep, _ := a.repos.Status(ctx)
	if st, ok := findRepo(rep, id); ok {
		if st.Source == loc {
			return nil, nil
		}
		return nil, xmlrpc.Faultf(xmlrpc.Exists, "%s: repository %s is configured already, from %s, not %s", method, id, st.Source, loc)
	}
	src, err := a.ovm3Source(method, loc)
	if err != nil {
		return nil, err
	}
	if _, err := a.addAs(ctx, method, src.Raw, "", id); err != nil {
		return nil, err
	}
	return nil, nil
}

func (a *Agent) ovm3UnmountRepoFS(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "unmount_repository_fs"
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	id, err := ovm3MountPointID(method, args.String(0))
	if err != nil {
		return nil, err
	}
	return nil, a.ovm3RemoveRepo(ctx, method, id)
}

// ovm3RemoveRepo unmounts the repository with agent 3 id id and removes it
// from the repositories files (repository.remove).
func (a *Agent) ovm3RemoveRepo(ctx context.Context, method, id string) error {
	rep, _ := a.repos.Status(ctx)
	st, ok := findRepo(rep, id)
	if !ok {
		return xmlrpc.Faultf(xmlrpc.NotFound, "%s: no repository %s on this host", method, id)
	}
	_, err := a.repos.Remove(ctx, st.UUID)
	return repoStateFault(err)
}

func (a *Agent) ovm3DeleteRepo(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	if args.Bool(1) {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "delete_repository with erase: this agent does not erase a repository's contents; delete_repository without erase unmounts it and removes it from the repositories files")
	}
	id, err := ovm3.RepoID(args.String(0))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	}
	return nil, a.ovm3RemoveRepo(ctx, "delete_repository", id)
}
