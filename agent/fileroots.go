package agent

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// fileRoots returns, fresh for each call, the directories in which an API
// caller's paths must resolve: the mounted repositories, the file systems
// the agent 3 storage plugin mounted in [agent] secondary_storage_dir (a
// domain's ISO image on CloudStack's secondary storage) and [agent]
// file_dirs of the configuration in force (a reload or a mount changes
// them).
func (a *Agent) fileRoots() []string {
	var roots []string
	if a.repos != nil {
		roots = append(roots, a.repos.MountPoints()...)
		roots = append(roots, a.secondaryRoots()...)
	}
	if s := a.state.Load(); s != nil && s.cfg != nil {
		roots = append(roots, s.cfg.Agent.FileDirs...)
	}
	return roots
}

// blockDevices is [agent] block_devices of the configuration in force.
func (a *Agent) blockDevices() []string {
	if s := a.state.Load(); s != nil && s.cfg != nil {
		return s.cfg.Agent.BlockDevices
	}
	return nil
}

// fileFault turns a file error into a fault with a code a caller can act
// on (see errnoCode); anything else is Internal.
func fileFault(what string, err error) error {
	code, ok := errnoCode(err)
	if !ok {
		code = xmlrpc.Internal
	}
	return xmlrpc.Faultf(code, "%s %v", what, err)
}

// errnoCode is the fault code for an operating-system error that is the
// caller's to fix rather than the agent's: no space, an existing file, a
// directory or FIFO given as a file, a path outside the allowed roots or
// not permitted, a missing file, a read-only file system. ok is false for anything else.
func errnoCode(err error) (code int, ok bool) {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return xmlrpc.NoResources, true
	case errors.Is(err, fs.ErrExist):
		return xmlrpc.Exists, true
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR), errors.Is(err, fileaccess.ErrNotRegular):
		return xmlrpc.BadParams, true
	case errors.Is(err, fileaccess.ErrOutside), errors.Is(err, fs.ErrPermission):
		return xmlrpc.AccessDenied, true
	case errors.Is(err, fs.ErrNotExist):
		return xmlrpc.NotFound, true
	case errors.Is(err, syscall.EROFS):
		return xmlrpc.BadState, true // mounted read-only
	}
	return 0, false
}
