package agent

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/relocation"
)

func (a *Agent) hasRepository(uuid string) bool {
	fi, err := os.Stat(filepath.Join(domains.RepositoryRoot, uuid))
	return err == nil && fi.IsDir()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// receiveDomain takes an incoming migration.
func (a *Agent) receiveDomain(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger) {
	_ = relocation.WriteWelcome(c, &relocation.Welcome{Code: xmlrpc.Unsupported, Error: "this agent cannot receive domains yet", AgentVersion: a.opts.Version, Protocol: ProtocolVersion, Host: hostname()})
	c.Close()
}
