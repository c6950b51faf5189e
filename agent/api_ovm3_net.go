package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/hostnet"
	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// sysClassNet is where the kernel lists network devices.
const sysClassNet = "/sys/class/net"

// ovm3NetMethods: agent 3's network discovery, read from the kernel, and
// the calls that make bridges, VLAN devices and addresses, which
// agent/hostnet makes on the devices [agent] network_devices allows (empty
// refuses them). The virtual IP of a server pool's master stays refused.
func (a *Agent) ovm3NetMethods() []xmlrpc.Def {
	refuse := func(name string) xmlrpc.Def {
		return xmlrpc.Def{Name: name, Result: xmlrpc.Nil, Variadic: true,
			Help: "Oracle VM Agent 3: refused here: this agent moves no virtual IP address between servers; give the pool's address on the host (or a keepalived the operator runs).",
			Run: func(context.Context, xmlrpc.Args) (any, error) {
				return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: this agent does not move a server pool's virtual IP address; configure the address on the host (for example with keepalived)", name)
			}}
	}
	action := xmlrpc.Req("action", xmlrpc.String)
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	allowed := " Only on devices [agent] network_devices allows (empty refuses the call); what it makes is recorded in the state directory (network.json), made again when the agent starts after a reboot, and is all a stop removes."
	return []xmlrpc.Def{
		{Name: "discover_network", Result: xmlrpc.String, Run: ovm3DiscoverNetwork,
			Help: "Oracle VM Agent 3: this host's network devices as an XML document in a string: Discover_Network_Result/Network/Active with Network/Device[@Name] (physical and VLAN devices: MAC, Basename, MTU) and Bridges/Device[@Name] (Family: Address, Netmask, Broadcast, MAC; Interfaces: PhyInterface, Interface)."},
		{Name: "ovs_br_config", Result: xmlrpc.String, Run: a.ovm3BrConfig, Params: []xmlrpc.Param{action, str("br_name"), str("net_dev")},
			Help: "Oracle VM Agent 3: action start makes bridge br_name (when it does not exist) and puts net_dev into it; stop takes net_dev out and removes the bridge this agent made (refused while a port it did not add, a running domain's interface, is in it). net_dev must exist, be no other bridge's port and carry no IPv4 address. Answers \"<action> bridge=<br_name> netdev=<net_dev>\"." + allowed},
		{Name: "ovs_local_config", Result: xmlrpc.String, Run: a.ovm3LocalConfig, Params: []xmlrpc.Param{action, str("br_name")},
			Help: "Oracle VM Agent 3: action start makes the local bridge br_name, one without a physical device (CloudStack's control0); stop removes it (refused while a domain's interface is in it). Answers \"<action> bridge=<br_name>\"." + allowed},
		{Name: "ovs_vlan_config", Result: xmlrpc.Nil, Run: a.ovm3VLANConfig, Params: []xmlrpc.Param{action, str("net_dev"), xmlrpc.Req("vlan_id", xmlrpc.Int)},
			Help: "Oracle VM Agent 3: action add makes the VLAN device <net_dev>.<vlan_id> (1 to 4094; the kernel's 802.1Q support, module 8021q, is needed), remove removes the one this agent made (refused while it is a bridge's port)." + allowed},
		{Name: "ovs_vlan_bridge", Result: xmlrpc.String, Run: a.ovm3VLANBridge, Params: []xmlrpc.Param{action, str("br_name"), str("net_dev"), xmlrpc.Req("vlan_id", xmlrpc.Int)},
			Help: "Oracle VM Agent 3: action start makes the VLAN device <net_dev>.<vlan_id> and bridge br_name with it as its port (CloudStack's <bridge>.<vlan> guest networks; net_dev may be another bridge's port); stop removes both. Answers \"<action> bridge=<br_name> netdev=<net_dev> vlan <vlan_id>\"." + allowed},
		{Name: "ovs_ip_config", Result: xmlrpc.Nil, Run: a.ovm3IPConfig, Params: []xmlrpc.Param{str("net_dev"), str("optype"), xmlrpc.Opt("ip", xmlrpc.String), xmlrpc.Opt("netmask", xmlrpc.String)},
			Help: "Oracle VM Agent 3: optype static gives net_dev the IPv4 address ip with netmask (255.255.0.0, or a prefix length) in place of the IPv4 addresses it has (CloudStack's 169.254.0.1 on control0); dhcp is refused (this agent runs no DHCP client)." + allowed},
		{Name: "ovs_control_interface", Result: xmlrpc.Boolean, Run: a.ovm3ControlInterface, Params: []xmlrpc.Param{str("dev"), str("cidr")},
			Help: "CloudStack's agent module: make dev the way to the network cidr (its link-local 169.254.0.0/16 onto control0, after ovs_ip_config): a route in the main table when dev has none, ARP on; a route to the same network through another device is removed when [agent] network_devices allows that device, and refused when it does not. Answers true." + allowed},
		refuse("configure_virtual_ip"), refuse("deconfigure_virtual_ip"),
	}
}

func (a *Agent) ovm3ControlInterface(ctx context.Context, args xmlrpc.Args) (any, error) {
	dev := args.String(0)
	p, err := hostnet.ParseNetwork(args.String(1))
	if err != nil {
		return nil, netFault("ovs_control_interface", err)
	}
	if err := a.netChange(ctx, "ovs_control_interface", func(pats []string) error {
		return a.hostnet.SetRoute(ctx, pats, dev, p)
	}, zap.String("device", dev), zap.String("network", p.String())); err != nil {
		return nil, err
	}
	return true, nil
}

// netPatterns is [agent] network_devices of the configuration in force.
func (a *Agent) netPatterns() ([]string, error) {
	st := a.state.Load()
	if st == nil || st.cfg == nil || a.hostnet == nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "the agent is still starting")
	}
	return st.cfg.Agent.NetworkDevices, nil
}

// netFault translates agent/hostnet's errors, once, here.
func netFault(method string, err error) error {
	code := xmlrpc.Internal
	switch {
	case errors.Is(err, hostnet.ErrInvalid):
		code = xmlrpc.BadParams
	case errors.Is(err, hostnet.ErrNotAllowed), errors.Is(err, hostnet.ErrUnsupported):
		code = xmlrpc.Unsupported
	case errors.Is(err, hostnet.ErrNotFound):
		code = xmlrpc.NotFound
	case errors.Is(err, hostnet.ErrBusy):
		code = xmlrpc.Busy
	case errors.Is(err, hostnet.ErrExists):
		code = xmlrpc.Exists
	case errors.Is(err, hostnet.ErrNotMade), errors.Is(err, hostnet.ErrRecord):
		code = xmlrpc.BadState
	}
	return xmlrpc.Faultf(code, "%s: %v", method, err)
}

// netAction checks an action against the two a call takes.
func netAction(method, act, start, stop string) error {
	if act != start && act != stop {
		return xmlrpc.Faultf(xmlrpc.BadParams, "%s: action %q: want %s or %s", method, act, start, stop)
	}
	return nil
}

// netChange runs one change of the host's network and logs it.
func (a *Agent) netChange(ctx context.Context, method string, f func(pats []string) error, fields ...zap.Field) error {
	pats, err := a.netPatterns()
	if err != nil {
		return err
	}
	if err := f(pats); err != nil {
		a.log.Warn("network change refused", append(fields, zap.String("call", method), zap.Error(err))...)
		return netFault(method, err)
	}
	a.log.Info("network changed", append(fields, zap.String("call", method))...)
	return nil
}

func (a *Agent) ovm3BrConfig(ctx context.Context, args xmlrpc.Args) (any, error) {
	act, br, dev := args.String(0), args.String(1), args.String(2)
	if err := netAction("ovs_br_config", act, "start", "stop"); err != nil {
		return nil, err
	}
	err := a.netChange(ctx, "ovs_br_config", func(pats []string) error {
		if act == "start" {
			return a.hostnet.StartBridge(ctx, pats, br, dev)
		}
		return a.hostnet.StopBridge(ctx, pats, br, dev)
	}, zap.String("action", act), zap.String("bridge", br), zap.String("device", dev))
	if err != nil {
		return nil, err
	}
	return act + " bridge=" + br + " netdev=" + dev, nil
}

func (a *Agent) ovm3LocalConfig(ctx context.Context, args xmlrpc.Args) (any, error) {
	act, br := args.String(0), args.String(1)
	if err := netAction("ovs_local_config", act, "start", "stop"); err != nil {
		return nil, err
	}
	err := a.netChange(ctx, "ovs_local_config", func(pats []string) error {
		if act == "start" {
			return a.hostnet.StartBridge(ctx, pats, br, "")
		}
		return a.hostnet.StopBridge(ctx, pats, br, "")
	}, zap.String("action", act), zap.String("bridge", br))
	if err != nil {
		return nil, err
	}
	return act + " bridge=" + br, nil
}

func (a *Agent) ovm3VLANConfig(ctx context.Context, args xmlrpc.Args) (any, error) {
	act, dev, id := args.String(0), args.String(1), args.Int(2)
	if err := netAction("ovs_vlan_config", act, "add", "remove"); err != nil {
		return nil, err
	}
	if id < 1 || id > 4094 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_vlan_config: VLAN id %d: want 1 to 4094", id)
	}
	return nil, a.netChange(ctx, "ovs_vlan_config", func(pats []string) error {
		if act == "add" {
			_, err := a.hostnet.AddVLAN(ctx, pats, dev, int(id))
			return err
		}
		return a.hostnet.RemoveVLAN(ctx, pats, dev, int(id))
	}, zap.String("action", act), zap.String("device", dev), zap.Int64("vlan", id))
}

func (a *Agent) ovm3VLANBridge(ctx context.Context, args xmlrpc.Args) (any, error) {
	act, br, dev, id := args.String(0), args.String(1), args.String(2), args.Int(3)
	if err := netAction("ovs_vlan_bridge", act, "start", "stop"); err != nil {
		return nil, err
	}
	if id < 1 || id > 4094 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_vlan_bridge: VLAN id %d: want 1 to 4094", id)
	}
	err := a.netChange(ctx, "ovs_vlan_bridge", func(pats []string) error {
		if act == "start" {
			_, err := a.hostnet.StartVLANBridge(ctx, pats, br, dev, int(id))
			return err
		}
		return a.hostnet.StopVLANBridge(ctx, pats, br, dev, int(id))
	}, zap.String("action", act), zap.String("bridge", br), zap.String("device", dev), zap.Int64("vlan", id))
	if err != nil {
		return nil, err
	}
	return fmt.Sprintf("%s bridge=%s netdev=%s vlan %d", act, br, dev, id), nil
}

func (a *Agent) ovm3IPConfig(ctx context.Context, args xmlrpc.Args) (any, error) {
	dev, op := args.String(0), args.String(1)
	switch op {
	case "static":
	case "dhcp":
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "ovs_ip_config: %s: optype dhcp: this agent runs no DHCP client; give a static address (optype static, ip, netmask)", dev)
	default:
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_ip_config: optype %q: want static (with ip and netmask)", op)
	}
	p, err := hostnet.ParseIPv4(args.String(2), args.String(3))
	if err != nil {
		return nil, netFault("ovs_ip_config", err)
	}
	return nil, a.netChange(ctx, "ovs_ip_config", func(pats []string) error {
		return a.hostnet.SetIPv4(ctx, pats, dev, p)
	}, zap.String("device", dev), zap.String("address", p.String()))
}

// isLinkDevice: a VLAN or bond device, listed beside the physical ones
// (a manager looks a VLAN device made by ovs_vlan_config up there).
func isLinkDevice(dev string) bool {
	u := readSys(dev, "uevent")
	return strings.Contains(u, "DEVTYPE=vlan") || strings.Contains(u, "DEVTYPE=bond")
}

func readSys(dev, file string) string {
	s, _ := readSmall(filepath.Join(sysClassNet, dev, file))
	return s
}

func ovm3DiscoverNetwork(context.Context, xmlrpc.Args) (any, error) {
	ents, err := os.ReadDir(sysClassNet)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "read the network devices: %v", err)
	}
	isPhysical := func(dev string) bool {
		_, err := os.Stat(filepath.Join(sysClassNet, dev, "device"))
		return err == nil
	}
	var phys, bridges []ovm3.NetDevice
	for _, e := range ents {
		dev := e.Name()
		mtu, _ := strconv.Atoi(readSys(dev, "mtu"))
		d := ovm3.NetDevice{Name: dev, MAC: readSys(dev, "address"), MTU: mtu}
		if _, err := os.Stat(filepath.Join(sysClassNet, dev, "bridge")); err == nil {
			ports, _ := os.ReadDir(filepath.Join(sysClassNet, dev, "brif"))
			for _, p := range ports {
				d.Ports = append(d.Ports, p.Name())
				if d.Physical == "" && (isPhysical(p.Name()) || isLinkDevice(p.Name())) {
					d.Physical = p.Name()
				}
			}
			if ifi, err := net.InterfaceByName(dev); err == nil {
				addrs, _ := ifi.Addrs()
				for _, ad := range addrs {
					if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil {
						ip4, mask := ipn.IP.To4(), net.IP(ipn.Mask).To4()
						bc := make(net.IP, 4)
						for i := range bc {
							bc[i] = ip4[i] | ^mask[i]
						}
						d.Address, d.Netmask, d.Broadcast = ip4.String(), mask.String(), bc.String()
						break
					}
				}
			}
			bridges = append(bridges, d)
		} else if isPhysical(dev) || isLinkDevice(dev) {
			phys = append(phys, d)
		}
	}
	sort.Slice(phys, func(i, j int) bool { return phys[i].Name < phys[j].Name })
	sort.Slice(bridges, func(i, j int) bool { return strings.Compare(bridges[i].Name, bridges[j].Name) < 0 })
	doc, err := ovm3.DiscoverNetwork(phys, bridges)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}
