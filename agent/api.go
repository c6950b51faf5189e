package agent

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
)

// ProtocolVersion is the version of the API and relocation protocol; peers
// and managers compare it. It changes when a method changes incompatibly.
const ProtocolVersion = 1

// newRPCServer builds the API: the server's own system.* methods, then
// each namespace's declared methods (agent, host, domain, migration,
// repository, pool) with their legacy xend aliases, the xend methods that
// have no modern twin, and Oracle VM Agent 3's names (api_ovm3*.go).
func (a *Agent) newRPCServer(cfg *config.Config) *xmlrpc.Server {
	lim := xmlrpc.DefaultLimits()
	if cfg.Server.MaxRequestBytes > 0 {
		lim.MaxBodyBytes = cfg.Server.MaxRequestBytes
	}
	s := xmlrpc.NewServer(xmlrpc.WithLimits(lim))
	s.OnCall = a.audit
	s.OnPanic = func(ctx context.Context, method string, recovered any, stack []byte) {
		a.log.Error("API handler panicked", zap.String("method", method), zap.Any("panic", recovered), zap.ByteString("stack", stack))
	}
	for _, ns := range [][]xmlrpc.Def{
		a.agentMethods(), a.hostMethods(), a.domainMethods(), a.guestMethods(), a.migrationMethods(), a.repositoryMethods(), a.xendMethods(),
		a.poolLocalMethods(), a.poolMasterMethods(), a.ovm3Methods(),
	} {
		for _, d := range ns {
			if err := s.Define(d); err != nil {
				panic(fmt.Sprintf("API declaration: %v", err)) // a bug in the declarations below
			}
		}
	}
	return s
}

// Parameters most methods share.
var (
	nameParam = xmlrpc.Req("name", xmlrpc.String)
	uuidParam = xmlrpc.Req("uuid", xmlrpc.String)
	idParam   = xmlrpc.Req("id", xmlrpc.String)
)
