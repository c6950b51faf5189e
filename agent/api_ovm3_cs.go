package agent

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3CSMethods are calls of the Python module CloudStack installs into an
// Oracle VM agent (cloudstack.py), those that only read this host, served
// from the agent's own knowledge (its file calls: api_ovm3_csfiles.go).
// The module's others (running commands in a virtual router, uploading
// files and keys, ping) are not served.
func (a *Agent) ovm3CSMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "get_vncport", Result: xmlrpc.String, Params: []xmlrpc.Param{nameParam}, Run: a.ovm3VNCPort,
			Help: "CloudStack's agent module: the VNC port of the running domain of that name, as a string; \"0\" when it has no display."},
		{Name: "ovs_dom0_stats", Result: xmlrpc.Struct, Params: []xmlrpc.Param{xmlrpc.Req("bridge", xmlrpc.String)}, Run: a.ovm3Dom0Stats,
			Help: "CloudStack's agent module: this host's load as strings: cpu (busy percent since the previous sample), total and free (memory, bytes), rx and tx (bytes through the named network device)."},
		{Name: "check_dom0_ip", Result: xmlrpc.Boolean, Params: []xmlrpc.Param{xmlrpc.Req("ip", xmlrpc.String)}, Run: ovm3HasIP,
			Help: "CloudStack's agent module: whether one of this host's network interfaces has the address."},
	}
}

func (a *Agent) ovm3VNCPort(_ context.Context, args xmlrpc.Args) (any, error) {
	in, err := a.domains.Info(args.String(0))
	if err != nil {
		return nil, domainFault(err)
	}
	if _, port, err := net.SplitHostPort(in.VNC); err == nil && in.State == "running" {
		return port, nil
	}
	return "0", nil
}

var deviceName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

func (a *Agent) ovm3Dom0Stats(_ context.Context, args xmlrpc.Args) (any, error) {
	dev := args.String(0)
	if !deviceName.MatchString(dev) || dev == "." || dev == ".." {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_dom0_stats: %q is not a network device name", dev)
	}
	st, err := a.sampler.Sample()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read host statistics: %v", err)
	}
	counter := func(name string) (string, error) {
		s, err := readSmall(filepath.Join(sysClassNet, dev, "statistics", name))
		if err != nil {
			return "", xmlrpc.Faultf(xmlrpc.NotFound, "ovs_dom0_stats: no network device %s on this host", dev)
		}
		return s, nil
	}
	rx, err := counter("rx_bytes")
	if err != nil {
		return nil, err
	}
	tx, err := counter("tx_bytes")
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"cpu":   strconv.FormatFloat(st.CPUBusyPercent, 'f', 1, 64),
		"total": strconv.FormatInt(st.MemoryTotal, 10),
		"free":  strconv.FormatInt(st.MemoryAvail, 10),
		"rx":    rx, "tx": tx,
	}, nil
}

func ovm3HasIP(_ context.Context, args xmlrpc.Args) (any, error) {
	want := net.ParseIP(strings.TrimSpace(args.String(0)))
	if want == nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "check_dom0_ip: %q is not an IP address", args.String(0))
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read the host's addresses: %v", err)
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.Equal(want) {
			return true, nil
		}
	}
	return false, nil
}
