package agent

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

func TestFaultCodesForFileErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("write /OVS/x/img: %w", syscall.ENOSPC), xmlrpc.NoResources},
		{fmt.Errorf("create /OVS/x/img: %w", fs.ErrExist), xmlrpc.Exists},
		{fmt.Errorf("open /OVS/x: %w", syscall.EISDIR), xmlrpc.BadParams},
		{fmt.Errorf("/OVS/x/fifo: %w", fileaccess.ErrNotRegular), xmlrpc.BadParams},
		{&fileaccess.OutsideError{Path: "/etc/shadow"}, xmlrpc.AccessDenied},
		{fmt.Errorf("open /OVS/x/none: %w", fs.ErrNotExist), xmlrpc.NotFound},
	} {
		if f := xmlrpc.AsFault(domainFault(c.err)); f.Code != c.want {
			t.Errorf("domainFault(%v) = %d, want %d", c.err, f.Code, c.want)
		}
		if f := xmlrpc.AsFault(fileFault("image", c.err)); f.Code != c.want {
			t.Errorf("fileFault(%v) = %d, want %d", c.err, f.Code, c.want)
		}
	}
	if f := xmlrpc.AsFault(domainFault(fmt.Errorf("vmm: %w", syscall.EIO))); f.Code != xmlrpc.Internal {
		t.Errorf("EIO = %d, want internal", f.Code)
	}
}
