package agent

import (
	"bufio"
	"net"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/relocation"
)

// serveProbe answers a sending agent's link probe (relocation.OpProbe,
// the dry run's estimate): it accepts, reads and discards the data and
// says how fast it arrived. The relocation server has already checked
// hosts-allow and the peer's credentials.
func (a *Agent) serveProbe(c net.Conn, r *bufio.Reader, log *zap.Logger) {
	defer c.Close()
	if err := relocation.WriteWelcome(c, &relocation.Welcome{OK: true, AgentVersion: a.opts.Version, Protocol: ProtocolVersion, Host: hostname()}); err != nil {
		log.Warn("answer link probe", zap.Error(err))
		return
	}
	res, err := relocation.ServeProbe(c, r)
	if err != nil {
		log.Warn("link probe failed", zap.Int64("bytes", res.Bytes), zap.Error(err))
		return
	}
	log.Info("link probe", zap.Int64("bytes", res.Bytes), zap.Duration("duration", res.Duration), zap.Float64("bytes_per_second", res.Throughput))
}
