package agent

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"regexp"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/agent/download"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// maxImports bounds the import_virtual_disk calls that download at once.
const maxImports = 4

// imports holds one token per download under way.
var imports = make(chan struct{}, maxImports)

// diskIDRE is a virtual disk id as the file name it becomes in
// VirtualDisks: Oracle VM Manager's 0004fb...img, CloudStack's uuid.raw.
var diskIDRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func (a *Agent) ovm3ImportMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "import_virtual_disk", Result: xmlrpc.Nil, Run: a.ovm3ImportDisk,
			Params: []xmlrpc.Param{xmlrpc.Req("url", xmlrpc.String), xmlrpc.Req("virtual_disk_id", xmlrpc.String), xmlrpc.Req("repo_uuid", xmlrpc.String), xmlrpc.Opt("option", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: download the disk image at url (http or https, at most 5 redirects, user:password@ sent as basic authentication and never logged) into VirtualDisks/<virtual_disk_id> of repository repo_uuid, mounted here; answers when it is there. The file must not exist; an image larger than the repository's free space is refused (by its Content-Length, or cut when the body grows past it); blocks of zeros stay holes. The partial file is removed when the transfer fails, stalls for 60 s, or the call is cancelled. At most 4 imports run at once. option must be empty."},
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
	select {
	case imports <- struct{}{}:
		defer func() { <-imports }()
	default:
		return nil, xmlrpc.Faultf(xmlrpc.Busy, "import_virtual_disk: %d imports are under way already: try again when one has ended", maxImports)
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
		return nil, fileFault("import_virtual_disk "+ovm3.VirtualDisks, err)
	}
	defer dir.Close()
	var st unix.Statfs_t
	if err := unix.Statfs(mp, &st); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "import_virtual_disk: the free space of %s: %v", mp, err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= 0 {
		return nil, xmlrpc.Faultf(xmlrpc.NoResources, "import_virtual_disk: repository %s has no free space: make room first", id)
	}
	res, err := download.Fetch(ctx, rawURL, dir, disk, download.Options{MaxBytes: free, Log: a.log.Named("import").With(zap.String("repository", id))})
	if err != nil {
		return nil, importFault(err)
	}
	a.log.Info("virtual disk imported", zap.String("repository", id), zap.String("disk", disk), zap.Int64("bytes", res.Bytes), zap.String("sha256", res.SHA256))
	return nil, nil
}

// importFault translates agent/download's errors, once, here; their text
// never holds the URL's credentials or query.
func importFault(err error) error {
	code := xmlrpc.Internal
	var se *download.StatusError
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
	}
	return xmlrpc.Faultf(code, "import_virtual_disk: %v (nothing was kept)", err)
}
