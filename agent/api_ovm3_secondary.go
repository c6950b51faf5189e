package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// ovm3SecondaryPrefix is where agent 3's storage plugin mounts the file
// systems that are not repositories (CloudStack's secondary storage at
// /nfsmnt/<uuid>); this agent mounts them in [agent]
// secondary_storage_dir and translates the names (ovm3PathMap).
const ovm3SecondaryPrefix = "/nfsmnt/"

// secondaryDir is [agent] secondary_storage_dir of the configuration in
// force.
func (a *Agent) secondaryDir() string {
	if s := a.state.Load(); s != nil && s.cfg != nil {
		return s.cfg.Agent.SecondaryStorageDir
	}
	return ""
}

// secondaryMounts are the file systems mounted in the secondary storage
// directory (none when repositories are not managed here).
func (a *Agent) secondaryMounts() []repository.SecondaryMount {
	dir := a.secondaryDir()
	if a.repos == nil || dir == "" {
		return nil
	}
	list, err := a.repos.SecondaryMounts(dir)
	if err != nil {
		return nil
	}
	return list
}

// secondaryRoots are the mount points of the secondary mounts.
func (a *Agent) secondaryRoots() []string {
	var out []string
	for _, s := range a.secondaryMounts() {
		out = append(out, s.MountPoint)
	}
	return out
}

// ovm3SecondaryName is the name of the secondary mount a storage plugin
// mount point names: /nfsmnt/<name>, or the same folder by its path here.
// ok is false for a mount point that is not a secondary one.
func (a *Agent) ovm3SecondaryName(method, mp string) (name string, ok bool, err error) {
	dir := a.secondaryDir()
	rest, found := strings.CutPrefix(mp, ovm3SecondaryPrefix)
	if !found && dir != "" {
		rest, found = strings.CutPrefix(mp, dir+"/")
	}
	if !found {
		return "", false, nil
	}
	if dir == "" {
		return "", true, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: mount point %q: file systems other than repositories are not mounted here ([agent] secondary_storage_dir is empty; set it, for example to /nfsmnt, to mount them)", method, mp)
	}
	if err := repository.CheckSecondaryName(rest); err != nil {
		return "", true, xmlrpc.Faultf(xmlrpc.BadParams, "%s: mount point %q: %v", method, mp, err)
	}
	return rest, true, nil
}

// ovm3BadMountPoint is the fault of a storage plugin mount point that is
// neither a repository's nor a secondary one.
func ovm3BadMountPoint(method, mp, dir string) error {
	return xmlrpc.Faultf(xmlrpc.BadParams, "%s: mount point %q: want /OVS/Repositories/<repository id> (a repository) or /nfsmnt/<name> (any other file system, mounted here in [agent] secondary_storage_dir %s)", method, mp, dir)
}

// secondaryDetails is the storage plugin's description of a secondary
// mount; uuid and ss_uuid are the caller's names when it gave them.
func secondaryDetails(s repository.SecondaryMount, ss, sd map[string]any) map[string]any {
	uuid, _ := sd["uuid"].(string)
	if uuid == "" {
		uuid = s.Name
	}
	ssUUID, _ := sd["ss_uuid"].(string)
	if ssUUID == "" {
		ssUUID, _ = ss["uuid"].(string)
	}
	opts := []any{}
	for _, o := range strings.Split(s.Options, ",") {
		if o != "" {
			opts = append(opts, o)
		}
	}
	path := s.Source
	if i := strings.Index(path, ":/"); i > 0 && !strings.HasPrefix(path, "/") {
		path = path[i+1:]
	}
	return map[string]any{
		"status": "", "uuid": uuid, "ss_uuid": ssUUID,
		"size": strconv.FormatUint(s.Size, 10), "free_sz": strconv.FormatUint(s.Free, 10),
		"state": "1", "mount_options": opts, "access_grp_names": []any{},
		"access_path": s.Source, "name": s.FSType + ":" + path,
	}
}

// ovm3MountSecondary is storage_plugin_mount at /nfsmnt/<name>: the NFS
// export or local block device of access_path mounted in the secondary
// storage directory (never a folder: a bind mount of a host folder would
// show the manager what file_dirs does not).
func (a *Agent) ovm3MountSecondary(ctx context.Context, method, plugin, name, loc string, ss, sd map[string]any, opts []string) (any, error) {
	// Mounted already from there: answered as it is (before the block
	// device check, which refuses a device the host has mounted).
	for _, s := range a.secondaryMounts() {
		if s.Name == name && sameLocation(s.Source, loc) {
			return secondaryDetails(s, ss, sd), nil
		}
	}
	src, err := a.ovm3Source(method, loc)
	if err != nil {
		return nil, err
	}
	if (src.Kind == repository.NFS) != (plugin == ovm3NFSPlugin) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %s is not a file system for %s (NFS exports go with the NFS plugin, local devices with OCFS2)", method, loc, plugin)
	}
	if src.Kind == repository.LocalDir {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %s is a folder: only an NFS export or a block device is mounted at %s%s (a folder inside [agent] file_dirs is a repository's source: mount it at /OVS/Repositories/<id>)", method, loc, ovm3SecondaryPrefix, name)
	}
	s, err := a.repos.MountSecondary(ctx, repository.SecondaryRequest{Dir: a.secondaryDir(), Name: name, Source: src, Options: opts})
	if err != nil {
		return nil, secondaryFault(method, err)
	}
	return secondaryDetails(s, ss, sd), nil
}

// secondaryFault is the fault of a secondary mount operation.
func secondaryFault(method string, err error) error {
	if errors.Is(err, repository.ErrNotMounted) {
		return xmlrpc.Faultf(xmlrpc.NotFound, "%s: %v", method, err)
	}
	return addFault(err, func(err error) error {
		return xmlrpc.Faultf(xmlrpc.BadState, "%s: %v", method, err)
	})
}

// ovm3SecondaryByPath is the secondary mount whose source is loc, or
// whose name is the storage details' uuid.
func (a *Agent) ovm3SecondaryByPath(sd map[string]any) (repository.SecondaryMount, bool) {
	loc, _ := sd["access_path"].(string)
	uuid, _ := sd["uuid"].(string)
	for _, s := range a.secondaryMounts() {
		if loc != "" && sameLocation(s.Source, loc) || uuid != "" && s.Name == uuid {
			return s, true
		}
	}
	return repository.SecondaryMount{}, false
}

// secondaryPath is the agent 3 name of a path inside the secondary
// storage directory, or p unchanged.
func secondaryExternal(dir, p string) string {
	if dir == "" {
		return p
	}
	if tail, ok := strings.CutPrefix(p, dir+"/"); ok {
		return ovm3SecondaryPrefix + tail
	}
	return p
}

// secondaryInternal maps /nfsmnt/... onto the secondary storage
// directory; other paths are returned unchanged.
func secondaryInternal(dir, p string) string {
	if dir == "" {
		return p
	}
	if tail, ok := strings.CutPrefix(p, ovm3SecondaryPrefix); ok && tail != "" {
		return filepath.Join(dir, tail)
	}
	return p
}

// sameLocation reports whether the mount table's source of a mount is
// loc: the same export, or the same device (a link to it included).
func sameLocation(mounted, loc string) bool {
	if strings.TrimSuffix(mounted, "/") == strings.TrimSuffix(loc, "/") {
		return true
	}
	if strings.HasPrefix(loc, "/dev/") {
		if real, err := filepath.EvalSymlinks(loc); err == nil {
			return real == mounted
		}
	}
	return false
}
