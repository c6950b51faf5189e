package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// sysClassNet is where the kernel lists network devices.
const sysClassNet = "/sys/class/net"

// ovm3NetMethods: agent 3's network discovery, read from the kernel; the
// calls that would change the host's network are refused (the host's
// networking is configured on the host).
func (a *Agent) ovm3NetMethods() []xmlrpc.Def {
	refuse := func(name string) xmlrpc.Def {
		return xmlrpc.Def{Name: name, Result: xmlrpc.Nil, Variadic: true,
			Help: "Oracle VM Agent 3: refused here: this agent does not change the host's network; create bridges and VLAN devices on the host (discover_network shows them).",
			Run: func(context.Context, xmlrpc.Args) (any, error) {
				return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: this agent does not change the host's network configuration; create the bridge or VLAN device on the host (ip link, or the distribution's network configuration), then discover_network shows it", name)
			}}
	}
	return []xmlrpc.Def{
		{Name: "discover_network", Result: xmlrpc.String, Run: ovm3DiscoverNetwork,
			Help: "Oracle VM Agent 3: this host's network devices as an XML document in a string: Discover_Network_Result/Network/Active with Network/Device[@Name] (physical devices: MAC, Basename, MTU) and Bridges/Device[@Name] (Family: Address, Netmask, Broadcast, MAC; Interfaces: PhyInterface, Interface)."},
		refuse("ovs_br_config"), refuse("ovs_vlan_bridge"), refuse("ovs_vlan_config"), refuse("ovs_local_config"),
		refuse("ovs_ip_config"), refuse("configure_virtual_ip"), refuse("deconfigure_virtual_ip"),
	}
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
				if d.Physical == "" && isPhysical(p.Name()) {
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
		} else if isPhysical(dev) {
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
