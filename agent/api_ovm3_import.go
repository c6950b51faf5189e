package agent

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/agent/download"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/repository"
)

// maxImports bounds the import_virtual_disk calls that download at once.
const maxImports = 4

// importing counts the imports under way, per repository: the partial
// files of a killed import are swept when none runs there.
type importing struct {
	mu     sync.Mutex
	byRepo map[string]map[string]bool // repository id -> disk ids
	total  int
}

// begin takes a slot for disk of repository id; first reports that no
// other import runs there. A second import of the same disk is refused
// at once (it would fetch the whole image to find the file exists).
func (im *importing) begin(id, disk string) (first bool, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.byRepo[id][disk] {
		return false, xmlrpc.Faultf(xmlrpc.Busy, "import_virtual_disk: disk %s of repository %s is being imported already: wait for that call", disk, id)
	}
	if im.total >= maxImports {
		return false, xmlrpc.Faultf(xmlrpc.Busy, "import_virtual_disk: %d imports are under way already: try again when one has ended", maxImports)
	}
	if im.byRepo == nil {
		im.byRepo = map[string]map[string]bool{}
	}
	if im.byRepo[id] == nil {
		im.byRepo[id] = map[string]bool{}
	}
	im.total++
	im.byRepo[id][disk] = true
	return len(im.byRepo[id]) == 1, nil
}

func (im *importing) end(id, disk string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.total--
	if delete(im.byRepo[id], disk); len(im.byRepo[id]) == 0 {
		delete(im.byRepo, id)
	}
}

// importReserve is the free space an import leaves in the repository: 5%
// of its file system, at most 1 GiB (the running domains' disks grow into
// it).
func importReserve(size int64) int64 { return min(size/20, 1<<30) }

// diskIDRE is a virtual disk id as the file name it becomes in
// VirtualDisks: Oracle VM Manager's 0004fb...img, CloudStack's uuid.raw.
var diskIDRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func (a *Agent) ovm3ImportMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "import_virtual_disk", Result: xmlrpc.Nil, Run: a.ovm3ImportDisk,
			Params: []xmlrpc.Param{xmlrpc.Req("url", xmlrpc.String), xmlrpc.Req("virtual_disk_id", xmlrpc.String), xmlrpc.Req("repo_uuid", xmlrpc.String), xmlrpc.Opt("option", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: download the disk image at url (http or https, at most 5 redirects, user:password@ sent as basic authentication and never logged) into VirtualDisks/<virtual_disk_id> of repository repo_uuid, mounted here; answers when it is there. The file must not exist; an image larger than the repository's free space (less 5% of its size, at most 1 GiB, kept for its domains' disks) is refused (by its Content-Length, or cut when the body grows past it); blocks of zeros stay holes. The partial file (hidden, .<disk id>.part-...) is removed when the transfer fails, stalls for 60 s, or the call is cancelled; one a killed agent left is removed by the next import into that repository. At most 4 imports run at once. option must be empty."},
	}
}

func (a *Agent) ovm3ImportDisk(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	rawURL, disk, repo := args.String(0), args.String(1), args.String(2)
	if _, err := download.CheckURL(rawURL); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "import_virtual_disk: %v", err)
	}
	if !diskIDRE.MatchString(disk) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "import_virtual_disk: virtual disk id %.64q: want a file name of letters, digits, '-', '_' and '.', not starting with '.', at most 128 characters", disk)
	}
	if o := args.StringOr(3, ""); o != "" {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "import_virtual_disk: option %.32q is not known here: leave it out", o)
	}
	id, err := ovm3.RepoID(repo)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "import_virtual_disk: %v", err)
	}
	mp, ok := a.ovm3Paths().mounts[id]
	if !ok {
		return nil, xmlrpc.Faultf(xmlrpc.NotFound, "import_virtual_disk: no repository %s is mounted on this host (discover_repositories lists them)", id)
	}
	first, err := a.imports.begin(id, disk)
	if err != nil {
		return nil, err
	}
	defer a.imports.end(id, disk)
	if !mountedAt(mp) {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "import_virtual_disk: repository %s is not mounted at %s now (unmounted behind the agent's back?): nothing was written; mount it again (ovm repo mount, or add_repository)", id, mp)
	}
	root, err := os.OpenRoot(mp)
	if err != nil {
		return nil, fileFault("import_virtual_disk repository", err)
	}
	defer root.Close()
	if err := root.Mkdir(ovm3.VirtualDisks, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fileFault("import_virtual_disk "+ovm3.VirtualDisks, err)
	}
	dir, err := root.OpenRoot(ovm3.VirtualDisks)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "import_virtual_disk: the repository's %s folder cannot be used (%v): it must be a folder inside the repository, not a symbolic link out of it", ovm3.VirtualDisks, err)
	}
	defer dir.Close()
	if first {
		a.sweepPartial(id, dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mp, &st); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "import_virtual_disk: the free space of %s: %v", mp, err)
	}
	bound := int64(st.Bavail)*st.Bsize - importReserve(int64(st.Blocks)*st.Bsize)
	if bound <= 0 {
		return nil, xmlrpc.Faultf(xmlrpc.NoResources, "import_virtual_disk: repository %s has no free space beyond the %d bytes kept for its domains' disks: make room first", id, importReserve(int64(st.Blocks)*st.Bsize))
	}
	longCall(ctx) // a large image may take longer than the write timeout
	res, err := download.Fetch(ctx, rawURL, dir, disk, download.Options{MaxBytes: bound, Log: a.log.Named("import").With(zap.String("repository", id))})
	if err != nil {
		return nil, importFault(err)
	}
	a.log.Info("virtual disk imported", zap.String("repository", id), zap.String("disk", disk), zap.Int64("bytes", res.Bytes), zap.String("sha256", res.SHA256))
	return nil, nil
}

// mountedAt reports whether the mount table shows a mount on path (when
// it cannot be read, yes: the write then finds out).
func mountedAt(path string) bool {
	table, err := repository.ReadMountInfo()
	if err != nil {
		return true
	}
	for _, m := range table {
		if m.MountPoint == path {
			return true
		}
	}
	return false
}

// sweepPartial removes the partial files a killed import left in a
// repository's VirtualDisks (no import runs there now).
func (a *Agent) sweepPartial(id string, dir *os.Root) {
	f, err := dir.Open(".")
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(folderLimit)
	f.Close()
	for _, n := range names {
		if download.IsPartial(n) {
			if err := dir.Remove(n); err == nil {
				a.log.Info("partial import removed", zap.String("repository", id), zap.String("file", n))
			}
		}
	}
}

// importFault translates agent/download's errors, once, here; their text
// never holds the URL's credentials or query.
func importFault(err error) error {
	code, hint := xmlrpc.Internal, ""
	var se *download.StatusError
	if c, ok := errnoCode(err); ok {
		code = c
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		code = xmlrpc.Exists
	case errors.Is(err, download.ErrTooLarge):
		code = xmlrpc.NoResources
	case errors.Is(err, download.ErrTimeout):
		code = xmlrpc.Timeout
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = xmlrpc.Cancelled
	case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusGone):
		code = xmlrpc.NotFound
	case errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden):
		code, hint = xmlrpc.BadParams, "; check the user:password@ of the URL, or the server's access rules"
	case errors.As(err, &se) && se.Code >= 500:
		hint = "; the image's server failed: try again later"
	}
	return xmlrpc.Faultf(code, "import_virtual_disk: %v%s (nothing was kept)", err, hint)
}
