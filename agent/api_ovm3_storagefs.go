package agent

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// ovm3StorageFSMethods: the storage plugin's file system calls, mapped
// onto the repositories and the secondary mounts. A storage_plugin_mount
// at /OVS/Repositories/<id> adds the repository a file system holds
// (repository.add), storage_plugin_unmount removes it again
// (repository.remove); one at /nfsmnt/<name> mounts the file system in
// [agent] secondary_storage_dir (the repository manager's secondary
// mounts: CloudStack's secondary storage). The info calls describe both.
func (a *Agent) ovm3StorageFSMethods() []xmlrpc.Def {
	ss, sd := xmlrpc.Req("storage_server", xmlrpc.Struct), xmlrpc.Req("storage_details", xmlrpc.Struct)
	plugin := xmlrpc.Req("plugin", xmlrpc.String)
	mp := xmlrpc.Req("mount_point", xmlrpc.String)
	const details = "{status, uuid, ss_uuid, size, free_sz (bytes, as strings), state (\"1\" mounted, \"0\" not), mount_options, access_grp_names (arrays of strings), access_path (the repository's source), name (file system type:path)}"
	return []xmlrpc.Def{
		{Name: "discover_storage_plugins", Result: xmlrpc.String, Run: a.ovm3StoragePlugins,
			Help: "Oracle VM Agent 3: the storage plugins served here as an XML document in a string (Discover_Storage_Plugins_Result/storage_plugin_info_list/storage_plugin_info[@plugin_impl_name] with plugin_name, plugin_desc, plugin_version, filesys_type, filesys_name, generic_plugin, cluster_required and abilities): oracle.generic.NFSPlugin.GenericNFSPlugin (NFS exports) and oracle.ocfs2.OCFS2.OCFS2Plugin (local block devices and folders, without OCFS2 clustering), both on this agent's repositories; no clone, snapshot or resize."},
		{Name: "storage_plugin_mount", Result: xmlrpc.Struct, Run: a.ovm3StorageMount,
			Params: []xmlrpc.Param{plugin, ss, sd, mp, xmlrpc.Opt("extra", xmlrpc.String), xmlrpc.Opt("active", xmlrpc.Boolean),
				{Name: "mount_options", Type: xmlrpc.Array, Optional: true}},
			Help: "Oracle VM Agent 3 storage plugin (NFS or OCFS2): mount the repository that storage_details.access_path holds (an NFS export; for OCFS2 a local block device that [agent] block_devices allows, or a folder inside [agent] file_dirs) at mount_point. At /OVS/Repositories/<its id> it is added as repository.add does, with mount_options joined by commas; the source must hold a repository (create_repository makes one). At /nfsmnt/<name> (a uuid: CloudStack's secondary storage) an NFS export or a block device is mounted in [agent] secondary_storage_dir, nosuid and nodev (a block device noexec too), with mount_options from an allow-list (ro, rw, vers=, proto=, timeo=, soft, hard, nolock, noatime, ...); it is not a repository and is not mounted again after a reboot. Answers the file system's details " + details + "; a mount of the same source there is answered as it is."},
		{Name: "storage_plugin_unmount", Result: xmlrpc.Nil, Run: a.ovm3StorageUnmount,
			Params: []xmlrpc.Param{plugin, ss, sd, mp, xmlrpc.Opt("active", xmlrpc.Boolean)},
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): unmount the repository at mount_point (/OVS/Repositories/<id>) and remove it from the repositories files, as delete_repository does, refused while running domains use it; or unmount the file system at /nfsmnt/<name>, refused while it is busy (a domain's ISO image). Contents stay."},
		{Name: "storage_plugin_getFileSystemInfo", Result: xmlrpc.Struct, Run: a.ovm3StorageFSInfo,
			Params: []xmlrpc.Param{plugin, ss, sd},
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): the details " + details + " of the repository that storage_server.uuid or storage_details.ss_uuid names (its id), or else whose source is storage_details.access_path; or else of the file system mounted at /nfsmnt/<name> from storage_details.access_path or named storage_details.uuid."},
		{Name: "storage_plugin_listFileSystems", Result: xmlrpc.Struct, Run: a.ovm3StorageListFS,
			Params: []xmlrpc.Param{plugin, ss},
			Help:   "Oracle VM Agent 3 storage plugin (NFS or OCFS2): the details " + details + " of the repository storage_server.uuid names; without a uuid, of the one repository of the plugin's kind (NFS: an export of storage_server.access_host; OCFS2: a local device or folder). The client reads one struct: several matches are refused, naming them."},
	}
}

// ovm3PluginAbilities: what the plugins' calls can do here (files and
// repositories; no clones, snapshots or resizing).
func ovm3PluginAbilities(backing string) []ovm3.Leaf {
	u := "UNSUPPORTED"
	return []ovm3.Leaf{
		{Name: "clone", Text: u}, {Name: "clone_is_sync", Text: u}, {Name: "custom_clone_name", Text: u},
		{Name: "snapshot", Text: u}, {Name: "snap_is_sync", Text: u}, {Name: "custom_snap_name", Text: u},
		{Name: "snapclone", Text: u}, {Name: "snapclone_is_sync", Text: u},
		{Name: "splitclone", Text: u}, {Name: "splitclone_is_sync", Text: u}, {Name: "splitclone_while_open", Text: u},
		{Name: "resize", Text: u}, {Name: "resize_is_sync", Text: u},
		{Name: "access_control", Text: "NO"}, {Name: "require_storage_name", Text: "NO"},
		{Name: "backing_device_type", Text: backing},
	}
}

func (a *Agent) ovm3StoragePlugins(context.Context, xmlrpc.Args) (any, error) {
	doc, err := ovm3.DiscoverStoragePlugins([]ovm3.StoragePlugin{
		{ImplName: "oracle.ocfs2.OCFS2.OCFS2Plugin", Name: "Local file system", Version: a.opts.Version,
			Description: "Local file systems (a block device [agent] block_devices allows, or a folder inside [agent] file_dirs) as this agent's repositories, under the OCFS2 plugin's name; no OCFS2 cluster is made",
			FilesysType: "LocalFS", FilesysName: "local", Abilities: ovm3PluginAbilities("DEVICE_SINGLE")},
		{ImplName: ovm3NFSPlugin, Name: "Network File System", Version: a.opts.Version,
			Description: "NFS exports as this agent's repositories", FilesysType: "NetworkFS", FilesysName: "NFS",
			Generic: true, Abilities: ovm3PluginAbilities("UNSUPPORTED")},
	})
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

// ovm3Plugin refuses a plugin whose calls are not served.
func ovm3Plugin(method, name string) error {
	if !ovm3FilePlugins[name] {
		return xmlrpc.Faultf(xmlrpc.Unsupported, "%s: storage plugin %q is not served here; use oracle.generic.NFSPlugin.GenericNFSPlugin (NFS exports) or oracle.ocfs2.OCFS2.OCFS2Plugin (local block devices and folders)", method, name)
	}
	return nil
}

const ovm3NFSPlugin = "oracle.generic.NFSPlugin.GenericNFSPlugin"

// fsDetails is the storage plugin's description of a repository's file
// system. uuid and ss_uuid are the caller's names for it when it gave
// them, else the repository's UUID (with dashes) and id (without).
func fsDetails(st repository.Status, sd map[string]any, fsType string) map[string]any {
	id, _ := ovm3.RepoID(st.UUID)
	uuid, _ := sd["uuid"].(string)
	if uuid == "" {
		uuid = dashed(id)
	}
	ssUUID, _ := sd["ss_uuid"].(string)
	if ssUUID == "" {
		ssUUID = id
	}
	state := "0"
	if st.State == repository.StateMounted || st.State == repository.StateInUse {
		state = "1"
	}
	opts := []any{}
	for _, o := range strings.Split(st.Options, ",") {
		if o != "" && o != repository.DefaultMountOptions {
			opts = append(opts, o)
		}
	}
	path := st.Source
	if src, err := repository.ParseSource(st.Source); err == nil {
		path = src.Path
	}
	return map[string]any{
		"status": st.Error, "uuid": uuid, "ss_uuid": ssUUID,
		"size": strconv.FormatUint(st.Size, 10), "free_sz": strconv.FormatUint(st.Free, 10),
		"state": state, "mount_options": opts, "access_grp_names": []any{},
		"access_path": st.Source, "name": fsType + ":" + path,
	}
}

// dashed writes a 32-digit id in the 8-4-4-4-12 form.
func dashed(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// findRepo is the repository with agent 3 id id.
func findRepo(rep repository.Report, id string) (repository.Status, bool) {
	for _, r := range rep.Repositories {
		if got, _ := ovm3.RepoID(r.UUID); got == id {
			return r, true
		}
	}
	return repository.Status{}, false
}

func (a *Agent) answerDetails(st repository.Status, sd map[string]any) map[string]any {
	fsType := mountTypes()[st.MountPoint]
	if fsType == "" {
		fsType = "none"
	}
	return fsDetails(st, sd, fsType)
}

func (a *Agent) ovm3StorageMount(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "storage_plugin_mount"
	if err := ovm3Plugin(method, args.String(0)); err != nil {
		return nil, err
	}
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	sd := args.Struct(2)
	loc, _ := sd["access_path"].(string)
	if loc == "" {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: storage_details.access_path: want the file system to mount (host:/export, a block device or a folder)", method)
	}
	opts, err := ovm3MountOptions(method, args)
	if err != nil {
		return nil, err
	}
	mp := args.String(3)
	if name, secondary, err := a.ovm3SecondaryName(method, mp); secondary {
		if err != nil {
			return nil, err
		}
		return a.ovm3MountSecondary(ctx, method, args.String(0), name, loc, args.Struct(1), sd, opts)
	}
	if !strings.HasPrefix(mp, ovm3RepoPrefix) {
		return nil, ovm3BadMountPoint(method, mp, a.secondaryDir())
	}
	id, err := ovm3MountPointID(method, mp)
	if err != nil {
		return nil, err
	}
	rep, _ := a.repos.Status(ctx)
	if st, ok := findRepo(rep, id); ok && st.Source == loc {
		return a.answerDetails(st, sd), nil // mounted already (its device is in use: by it)
	}
	src, err := a.ovm3Source(method, loc)
	if err != nil {
		return nil, err
	}
	if (src.Kind == repository.NFS) != (args.String(0) == ovm3NFSPlugin) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %s is not a file system for %s (NFS exports go with the NFS plugin, local devices and folders with OCFS2)", method, loc, args.String(0))
	}
	if st, ok := findRepo(rep, id); ok {
		if st.Source != src.Raw {
			return nil, xmlrpc.Faultf(xmlrpc.Exists, "%s: repository %s is configured already, from %s, not %s", method, id, st.Source, src.Raw)
		}
		return a.answerDetails(st, sd), nil
	}
	st, err := a.addAs(ctx, method, src.Raw, strings.Join(opts, ","), id)
	if err != nil {
		return nil, err
	}
	return a.answerDetails(st, sd), nil
}

// ovm3MountOptions is storage_plugin_mount's list of mount options.
func ovm3MountOptions(method string, args xmlrpc.Args) ([]string, error) {
	var opts []string
	if args.Has(6) {
		list, _ := args.All()[6].([]any)
		for _, o := range list {
			s, ok := o.(string)
			if !ok {
				return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: mount_options must be strings, got %T", method, o)
			}
			opts = append(opts, s)
		}
	}
	return opts, nil
}

// addAs adds the repository source holds, which must be id; another
// repository is removed again and refused.
func (a *Agent) addAs(ctx context.Context, method, source, options, id string) (repository.Status, error) {
	st, err := a.repos.Add(ctx, source, options)
	if errors.Is(err, repository.ErrNotRepository) {
		return st, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s: %v; this agent mounts only repositories (create_repository makes one there with the manager's id), so nothing was mounted", method, err)
	}
	if err != nil {
		return st, addFault(err, repoStateFault)
	}
	if got, _ := ovm3.RepoID(st.UUID); got != id {
		if _, rerr := a.repos.Remove(ctx, st.UUID); rerr != nil {
			return st, xmlrpc.Faultf(xmlrpc.Internal, "%s: %s holds repository %s, not %s, and removing it again failed: %v", method, source, got, id, rerr)
		}
		return st, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s: %s holds repository %s, not %s (the mount point names the id); nothing was added", method, source, got, id)
	}
	return st, nil
}

func (a *Agent) ovm3StorageUnmount(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "storage_plugin_unmount"
	if err := ovm3Plugin(method, args.String(0)); err != nil {
		return nil, err
	}
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	mp := args.String(3)
	if name, secondary, err := a.ovm3SecondaryName(method, mp); secondary {
		if err != nil {
			return nil, err
		}
		if _, err := a.repos.UnmountSecondary(ctx, a.secondaryDir(), name); err != nil {
			return nil, secondaryFault(method, err)
		}
		return nil, nil
	}
	if !strings.HasPrefix(mp, ovm3RepoPrefix) {
		return nil, ovm3BadMountPoint(method, mp, a.secondaryDir())
	}
	id, err := ovm3MountPointID(method, mp)
	if err != nil {
		return nil, err
	}
	return nil, a.ovm3RemoveRepo(ctx, method, id)
}

func (a *Agent) ovm3StorageFSInfo(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "storage_plugin_getFileSystemInfo"
	if err := ovm3Plugin(method, args.String(0)); err != nil {
		return nil, err
	}
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	ss, sd := args.Struct(1), args.Struct(2)
	rep, _ := a.repos.Status(ctx)
	for _, k := range []any{ss["uuid"], sd["ss_uuid"]} {
		if s, _ := k.(string); s != "" {
			if id, err := ovm3.RepoID(s); err == nil {
				if st, ok := findRepo(rep, id); ok {
					return a.answerDetails(st, sd), nil
				}
			}
		}
	}
	if loc, _ := sd["access_path"].(string); loc != "" {
		for _, st := range rep.Repositories {
			if st.Source == loc {
				return a.answerDetails(st, sd), nil
			}
		}
	}
	if s, ok := a.ovm3SecondaryByPath(sd); ok {
		return secondaryDetails(s, ss, sd), nil
	}
	return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%s: no repository here is named by storage_server.uuid %v or storage_details.ss_uuid %v, or has the source %v, and no file system mounted at /nfsmnt/ has that source or the name storage_details.uuid %v", method, ss["uuid"], sd["ss_uuid"], sd["access_path"], sd["uuid"])
}

func (a *Agent) ovm3StorageListFS(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "storage_plugin_listFileSystems"
	if err := ovm3Plugin(method, args.String(0)); err != nil {
		return nil, err
	}
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	ss := args.Struct(1)
	rep, _ := a.repos.Status(ctx)
	if s, _ := ss["uuid"].(string); s != "" {
		id, err := ovm3.RepoID(s)
		if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: storage_server.uuid: %v", method, err)
		}
		st, ok := findRepo(rep, id)
		if !ok {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%s: no repository %s on this host", method, id)
		}
		return a.answerDetails(st, nil), nil
	}
	nfs := args.String(0) == ovm3NFSPlugin
	host, _ := ss["access_host"].(string)
	var match []repository.Status
	for _, st := range rep.Repositories {
		src, err := repository.ParseSource(st.Source)
		if err != nil || (src.Kind == repository.NFS) != nfs || nfs && host != "" && src.Host != host {
			continue
		}
		match = append(match, st)
	}
	switch len(match) {
	case 0:
		return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%s: no repository of plugin %s here (access_host %q)", method, args.String(0), host)
	case 1:
		return a.answerDetails(match[0], nil), nil
	}
	ids := make([]string, len(match))
	for i, st := range match {
		ids[i] = st.UUID
	}
	return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %d repositories match (%s); name one by storage_server.uuid", method, len(match), strings.Join(ids, ", "))
}
