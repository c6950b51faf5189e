package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// receiveDomain takes an incoming migration: it checks the offer, starts
// an incoming VMM, accepts, and hands the connection to the VMM.
func (a *Agent) receiveDomain(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger) {
	welcome := func(w *relocation.Welcome) error {
		w.AgentVersion, w.Protocol, w.Host = a.opts.Version, ProtocolVersion, hostname()
		return relocation.WriteWelcome(c, w)
	}
	if h.Channel != 0 {
		a.attachChannel(c, r, h, log, welcome)
		return
	}
	if problems := a.checkIncoming(h); len(problems) > 0 {
		log.Warn("incoming migration refused", zap.Strings("problems", problems))
		_ = welcome(&relocation.Welcome{Code: xmlrpc.BadState, Error: "this host cannot take the domain", Problems: problems})
		c.Close()
		return
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		c.Close()
		return
	}
	if err := a.domains.Incoming(h.Offer.Config, h.Source); err != nil {
		log.Warn("incoming migration: VMM did not start", zap.Error(err))
		_ = welcome(&relocation.Welcome{Code: xmlrpc.Internal, Error: err.Error()})
		c.Close()
		return
	}
	name := h.Offer.Name
	if err := welcome(&relocation.Welcome{OK: true}); err != nil {
		log.Warn("incoming migration: answer the source", zap.Error(err))
		c.Close()
		_ = a.domains.Destroy(name)
		return
	}
	f, err := migration.HandOff(c)
	if err == nil {
		_, err = a.domains.Call(name, control.Request{Op: control.OpMigrateReceive, Migration: h.Migration, Live: h.Live, ProgressTimeout: a.migrations.ProgressTimeout}, 10*time.Second, f)
		f.Close()
	}
	if err != nil {
		log.Error("incoming migration: hand the connection to the VMM", zap.Error(err))
		_ = a.domains.Destroy(name)
		return
	}
	log.Info("incoming migration: receiving")
	go func() {
		st := a.domains.WatchIncoming(name)
		log.Info("incoming migration ended", zap.String("state", string(st)))
	}()
}

// attachChannel takes an extra connection of a parallel migration: it
// checks that the domain is receiving that very migration here, accepts,
// and hands the connection to its incoming VMM.
func (a *Agent) attachChannel(c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger, welcome func(*relocation.Welcome) error) {
	log = log.With(zap.Int("channel", h.Channel))
	refuse := func(msg string) {
		log.Warn("migration channel refused", zap.String("reason", msg))
		_ = welcome(&relocation.Welcome{Code: xmlrpc.BadState, Error: msg})
		c.Close()
	}
	if h.Channel < 0 || h.Channel >= h.Channels || h.Channels > pagexfer.MaxStreams {
		refuse(fmt.Sprintf("channel %d of %d (at most %d)", h.Channel, h.Channels, pagexfer.MaxStreams))
		return
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		c.Close()
		return
	}
	// The source dials the extra channels as soon as the first one is
	// welcomed, which can be before that one reached the VMM: wait a
	// little for the VMM to be receiving this migration.
	name := h.Offer.Name
	if in, err := a.domains.Info(name); err != nil || in.State != string(domains.Starting) {
		refuse(fmt.Sprintf("%s is not receiving migration %s here", name, h.Migration))
		return
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := a.domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err == nil && resp.Migration != nil && resp.Migration.ID == h.Migration && resp.Migration.Phase == control.PhaseReceiving {
			break
		}
		if time.Now().After(deadline) {
			refuse(fmt.Sprintf("%s is not receiving migration %s here", name, h.Migration))
			return
		}
	}
	if err := welcome(&relocation.Welcome{OK: true}); err != nil {
		log.Warn("migration channel: answer the source", zap.Error(err))
		c.Close()
		return
	}
	f, err := migration.HandOff(c)
	if err == nil {
		_, err = a.domains.Call(name, control.Request{Op: control.OpMigrateAttach, Migration: h.Migration}, 10*time.Second, f)
		f.Close()
	}
	if err != nil {
		// The VMM's receiver fails without this stream and says so to
		// the source on the first connection.
		log.Error("migration channel: hand the connection to the VMM", zap.Error(err))
		return
	}
	log.Info("migration channel attached")
}
