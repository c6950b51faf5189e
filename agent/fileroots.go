package agent

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// fileRoots returns, fresh for each call, the directories in which an API
// caller's paths must resolve: the mounted repositories and [agent] file_dirs
// of the configuration in force (a reload or a mount changes them).
func (a *Agent) fileRoots() []string {
	var roots []string
	if a.repos != nil {
		roots = append(roots, a.repos.MountPoints()...)
	}
	if s := a.state.Load(); s != nil && s.cfg != nil {
		roots = append(roots, s.cfg.Agent.FileDirs...)
	}
	return roots
}

// fileFault turns a file error into a fault with a code a caller can act
// on: outside the allowed roots → AccessDenied; not a regular file →
// BadParams; missing → NotFound; exists → Exists; no space → NoResources.
func fileFault(what string, err error) error {
	code := xmlrpc.Internal
	switch {
	case errors.Is(err, fileaccess.ErrOutside):
		code = xmlrpc.AccessDenied
	case errors.Is(err, fileaccess.ErrNotRegular), errors.Is(err, syscall.EISDIR):
		code = xmlrpc.BadParams
	case errors.Is(err, fs.ErrNotExist):
		code = xmlrpc.NotFound
	case errors.Is(err, fs.ErrExist):
		code = xmlrpc.Exists
	case errors.Is(err, syscall.ENOSPC):
		code = xmlrpc.NoResources
	case errors.Is(err, fs.ErrPermission):
		code = xmlrpc.AccessDenied
	}
	return xmlrpc.Faultf(code, "%s %v", what, err)
}

// errnoCode is the fault code for an operating-system error that is the
// caller's to fix rather than the agent's: no space, an existing file, a
// directory given as a file, a missing file. ok is false for anything else.
func errnoCode(err error) (code int, ok bool) {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return xmlrpc.NoResources, true
	case errors.Is(err, fs.ErrExist):
		return xmlrpc.Exists, true
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR), errors.Is(err, fileaccess.ErrNotRegular):
		return xmlrpc.BadParams, true
	case errors.Is(err, fileaccess.ErrOutside):
		return xmlrpc.AccessDenied, true
	case errors.Is(err, fs.ErrNotExist):
		return xmlrpc.NotFound, true
	}
	return 0, false
}
