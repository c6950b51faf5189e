package hostnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// StartBridge makes bridge br (when it does not exist) and brings it up,
// and, when port is not "", puts device port into it. Both names must be
// allowed by patterns. A bridge that exists already is used as it is; a
// port already in br is no change. Refused: a br that exists and is not a
// bridge (ErrExists), a port that is missing (ErrNotFound), a bridge, a
// port of another bridge, or carries an IPv4 address (ErrBusy).
func (m *Manager) StartBridge(ctx context.Context, patterns []string, br, port string) error {
	return m.change(ctx, func(cs []Change) ([]Change, error) { return m.startBridge(ctx, patterns, cs, br, port) })
}

// change runs f on the record, one change at a time, and commits the
// record f answers.
func (m *Manager) change(ctx context.Context, f func(cs []Change) ([]Change, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return err
	}
	next, err := f(cs)
	if err != nil {
		return err
	}
	return m.commit(ctx, cs, next)
}

// onDevice is SetIPv4's and SetRoute's frame: with the lock held and the
// record read, device dev must be allowed by patterns and present; f
// makes its change, pushing onto u what undoes each step, and answers the
// record after it, saved when it differs; when f or the save fails, u is
// run.
func (m *Manager) onDevice(ctx context.Context, patterns []string, dev string, f func(cs []Change, u *undo) ([]Change, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return err
	}
	if err := allowed(patterns, dev); err != nil {
		return err
	}
	if err := m.present(dev); err != nil {
		return err
	}
	var u undo
	next, err := f(cs, &u)
	if err == nil && !slices.Equal(cs, next) {
		err = m.save(next)
	}
	if err != nil {
		u.run()
	}
	return err
}

// commit saves next when it differs from cs. When the save fails after
// a start (next is cs and more), the devices it made are removed again;
// after a stop the removal stands, and the error says to repeat the call
// once the record can be written.
func (m *Manager) commit(ctx context.Context, cs, next []Change) error {
	if slices.Equal(cs, next) {
		return nil
	}
	if err := m.save(next); err != nil {
		if len(next) > len(cs) && slices.Equal(next[:len(cs)], cs) {
			m.revert(next[len(cs):])
			return fmt.Errorf("%w (the change is undone)", err)
		}
		return fmt.Errorf("%w: the change is made on the host, but the record still lists what it removed: make the state directory writable and repeat the call", err)
	}
	return nil
}

// revert undoes the changes added (a save that failed).
func (m *Manager) revert(added []Change) {
	var u undo
	for _, c := range added {
		switch c.Kind {
		case KindBridge, KindVLAN:
			u.push(func(ctx context.Context) error { return m.ip(ctx, "link", "del", "dev", c.Name) })
		case KindPort:
			u.push(func(ctx context.Context) error { return m.ip(ctx, "link", "set", "dev", c.Name, "nomaster") })
		}
	}
	u.run()
}

func (m *Manager) startBridge(ctx context.Context, patterns []string, cs []Change, br, port string) ([]Change, error) {
	if err := allowed(patterns, br); err != nil {
		return nil, err
	}
	if port != "" {
		if err := allowed(patterns, port); err != nil {
			return nil, err
		}
		if port == br {
			return nil, fmt.Errorf("%w: bridge %s cannot be its own port", ErrInvalid, br)
		}
	}
	var u undo
	ok := false
	defer func() {
		if !ok {
			u.run()
		}
	}()
	next := slices.Clone(cs)
	if m.exists(br) {
		if !m.isBridge(br) {
			return nil, fmt.Errorf("%w: %s exists and is not a bridge: name another bridge, or remove %s on the host", ErrExists, br, br)
		}
	} else {
		if err := m.ip(ctx, "link", "add", "name", br, "type", "bridge"); err != nil {
			var kl kernelLacks
			if errors.As(err, &kl) {
				return nil, fmt.Errorf("%w: make bridge %s: this kernel has no bridge support (module bridge): load it (modprobe bridge) (%v)", ErrUnsupported, br, err)
			}
			return nil, fmt.Errorf("make bridge %s: %w", br, err)
		}
		u.push(func(ctx context.Context) error { return m.ip(ctx, "link", "del", "dev", br) })
		if err := m.ip(ctx, "link", "set", "dev", br, "up"); err != nil {
			return nil, fmt.Errorf("bring bridge %s up: %w", br, err)
		}
		next = append(next, Change{Kind: KindBridge, Name: br})
	}
	if port != "" {
		if err := m.present(port); err != nil {
			return nil, err
		}
		if m.isBridge(port) {
			return nil, fmt.Errorf("%w: %s is a bridge: a bridge's port is a physical, bond or VLAN device", ErrInvalid, port)
		}
		switch mst := m.master(port); mst {
		case br:
			ok = true
			return next, nil
		case "":
		default:
			return nil, fmt.Errorf("%w: %s is a port of %s already: take it out of %s first", ErrBusy, port, mst, mst)
		}
		if a, err := portAddress(port); err != nil {
			return nil, err
		} else if a != "" {
			return nil, fmt.Errorf("%w: %s carries the address %s, which a bridge's port loses: move the address to bridge %s on the host, or name a device without one", ErrBusy, port, a, br)
		}
		if err := m.ip(ctx, "link", "set", "dev", port, "master", br); err != nil {
			return nil, fmt.Errorf("put %s into bridge %s: %w", port, br, err)
		}
		u.push(func(ctx context.Context) error { return m.ip(ctx, "link", "set", "dev", port, "nomaster") })
		if err := m.ip(ctx, "link", "set", "dev", port, "up"); err != nil {
			return nil, fmt.Errorf("bring %s up: %w", port, err)
		}
		next = append(next, Change{Kind: KindPort, Name: port, Bridge: br})
	}
	ok = true
	return next, nil
}

// StopBridge undoes StartBridge: it takes port (when not "") out of br,
// where this package put it, and removes br when this package made it,
// with the ports it put there. Refused: a bridge with a port this package
// did not add (a running domain's vif: ErrBusy), a bridge or port the host
// made itself (ErrNotMade). A bridge that is not there (a repeated stop, a
// reboot) is no error: the record forgets it.
func (m *Manager) StopBridge(ctx context.Context, patterns []string, br, port string) error {
	return m.change(ctx, func(cs []Change) ([]Change, error) { return m.stopBridge(ctx, patterns, cs, br, port) })
}

func (m *Manager) stopBridge(ctx context.Context, patterns []string, cs []Change, br, port string) ([]Change, error) {
	if err := allowed(patterns, br); err != nil {
		return nil, err
	}
	if port != "" {
		if err := CheckName(port); err != nil {
			return nil, err
		}
	}
	ours := made(cs, br)
	if !m.exists(br) {
		// gone already (a repeated stop, a reboot): nothing to remove
		return without(cs, func(c Change) bool { return (ours && c.Name == br) || c.Bridge == br }), nil
	}
	if !m.isBridge(br) {
		return nil, fmt.Errorf("%w: %s is not a bridge", ErrInvalid, br)
	}
	added := func(p string) bool { return has(cs, Change{Kind: KindPort, Name: p, Bridge: br}) }
	if port != "" && m.master(port) == br && !added(port) {
		return nil, fmt.Errorf("%w: %s was put into bridge %s on the host, not by this agent: take it out on the host", ErrNotMade, port, br)
	}
	if !ours {
		if port == "" || !added(port) {
			return nil, fmt.Errorf("%w: bridge %s is the host's own (this agent did not make it): remove it on the host", ErrNotMade, br)
		}
		if m.master(port) == br {
			if err := m.ip(ctx, "link", "set", "dev", port, "nomaster"); err != nil {
				return nil, fmt.Errorf("take %s out of bridge %s: %w", port, br, err)
			}
		}
		return without(cs, func(c Change) bool { return c.Kind == KindPort && c.Name == port && c.Bridge == br }), nil
	}
	var others []string
	for _, p := range m.ports(br) {
		if !added(p) {
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		return nil, fmt.Errorf("%w: bridge %s has ports this agent did not put there (%s: a running domain's interfaces, or the host's): stop those domains or take the ports out first", ErrBusy, br, strings.Join(others, " "))
	}
	if err := m.ip(ctx, "link", "del", "dev", br); err != nil {
		return nil, fmt.Errorf("remove bridge %s: %w", br, err)
	}
	return without(cs, func(c Change) bool { return c.Name == br || c.Bridge == br }), nil
}

// AddVLAN makes the VLAN device <dev>.<id> on dev and brings it up; its
// name must be allowed by patterns. One that exists already (the same
// VLAN on the same device) is no change. It answers the device's name.
func (m *Manager) AddVLAN(ctx context.Context, patterns []string, dev string, id int) (string, error) {
	var name string
	err := m.change(ctx, func(cs []Change) (next []Change, err error) {
		name, next, err = m.addVLAN(ctx, patterns, cs, dev, id)
		return next, err
	})
	return name, err
}

func (m *Manager) addVLAN(ctx context.Context, patterns []string, cs []Change, dev string, id int) (string, []Change, error) {
	if err := CheckName(dev); err != nil {
		return "", nil, err
	}
	if err := CheckVLAN(id); err != nil {
		return "", nil, err
	}
	name := VLANName(dev, id)
	if err := CheckName(name); err != nil {
		return "", nil, fmt.Errorf("%w: the VLAN device's name %s is longer than 15 bytes: use a shorter device name", ErrInvalid, name)
	}
	if err := allowed(patterns, name); err != nil {
		return "", nil, err
	}
	if err := m.present(dev); err != nil {
		return "", nil, err
	}
	if m.exists(name) {
		if made(cs, name) {
			return name, cs, nil
		}
		if link, vid, ok := vlanOf(name); ok && link == dev && vid == id {
			return name, cs, nil
		}
		return "", nil, fmt.Errorf("%w: %s exists and is not VLAN %d of %s: remove it on the host", ErrExists, name, id, dev)
	}
	if err := m.ip(ctx, "link", "add", "link", dev, "name", name, "type", "vlan", "id", strconv.Itoa(id)); err != nil {
		var kl kernelLacks
		if errors.As(err, &kl) {
			return "", nil, fmt.Errorf("%w: make VLAN device %s: this kernel has no 802.1Q VLAN support (module 8021q): load it (modprobe 8021q), or use a kernel that has it (%v)", ErrUnsupported, name, err)
		}
		return "", nil, fmt.Errorf("make VLAN device %s: %w", name, err)
	}
	if err := m.ip(ctx, "link", "set", "dev", name, "up"); err != nil {
		_ = m.ip(ctx, "link", "del", "dev", name)
		return "", nil, fmt.Errorf("bring %s up: %w", name, err)
	}
	return name, append(slices.Clone(cs), Change{Kind: KindVLAN, Name: name, Link: dev, VLAN: id}), nil
}

// vlanOf reads the kernel's VLAN table for device name.
func vlanOf(name string) (link string, id int, ok bool) {
	f, err := os.Open("/proc/net/vlan/config")
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "|")
		if len(fs) != 3 || strings.TrimSpace(fs[0]) != name {
			continue
		}
		id, err := strconv.Atoi(strings.TrimSpace(fs[1]))
		return strings.TrimSpace(fs[2]), id, err == nil
	}
	return "", 0, false
}

// RemoveVLAN removes the VLAN device <dev>.<id> this package made.
// Refused for one the host made (ErrNotMade) and one that is a bridge's
// port (ErrBusy: stop the bridge first). One that is not there (a repeated
// remove) is no error.
func (m *Manager) RemoveVLAN(ctx context.Context, patterns []string, dev string, id int) error {
	return m.change(ctx, func(cs []Change) ([]Change, error) { return m.removeVLAN(ctx, patterns, cs, dev, id) })
}

func (m *Manager) removeVLAN(ctx context.Context, patterns []string, cs []Change, dev string, id int) ([]Change, error) {
	if err := CheckName(dev); err != nil {
		return nil, err
	}
	if err := CheckVLAN(id); err != nil {
		return nil, err
	}
	name := VLANName(dev, id)
	if err := allowed(patterns, name); err != nil {
		return nil, err
	}
	ours := made(cs, name)
	// One that is gone already (a repeated remove, a reboot) leaves
	// nothing to remove.
	if m.exists(name) {
		if !ours {
			return nil, fmt.Errorf("%w: VLAN device %s is the host's own (this agent did not make it): remove it on the host", ErrNotMade, name)
		}
		if mst := m.master(name); mst != "" {
			return nil, fmt.Errorf("%w: %s is a port of bridge %s: stop that bridge first (ovs_vlan_bridge stop, or ovs_br_config stop)", ErrBusy, name, mst)
		}
		if err := m.ip(ctx, "link", "del", "dev", name); err != nil {
			return nil, fmt.Errorf("remove VLAN device %s: %w", name, err)
		}
	}
	return without(cs, func(c Change) bool { return c.Name == name }), nil
}

// StartVLANBridge makes VLAN device <dev>.<id> and bridge br with it as
// the port (AddVLAN, then StartBridge); when the bridge fails, a VLAN
// device made for it is removed again. It answers the VLAN device's name.
func (m *Manager) StartVLANBridge(ctx context.Context, patterns []string, br, dev string, id int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return "", err
	}
	if err := allowed(patterns, br); err != nil {
		return "", err
	}
	name, mid, err := m.addVLAN(ctx, patterns, cs, dev, id)
	if err != nil {
		return "", err
	}
	next, err := m.startBridge(ctx, patterns, mid, br, name)
	if err != nil {
		m.revert(mid[len(cs):])
		return "", err
	}
	return name, m.commit(ctx, cs, next)
}

// StopVLANBridge undoes StartVLANBridge: bridge br goes (StopBridge with
// the VLAN device as its port), then the VLAN device when this package
// made it.
func (m *Manager) StopVLANBridge(ctx context.Context, patterns []string, br, dev string, id int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return err
	}
	if err := CheckName(dev); err != nil {
		return err
	}
	if err := CheckVLAN(id); err != nil {
		return err
	}
	name := VLANName(dev, id)
	next, err := m.stopBridge(ctx, patterns, cs, br, name)
	if err != nil {
		return err
	}
	if made(next, name) {
		after, err := m.removeVLAN(ctx, patterns, next, dev, id)
		if err != nil {
			// the bridge is gone: record that much; a repeated stop
			// removes the VLAN device
			if cerr := m.commit(ctx, cs, next); cerr != nil {
				return cerr
			}
			return err
		}
		next = after
	}
	return m.commit(ctx, cs, next)
}

// present is nil when device dev exists, else ErrNotFound saying where
// the devices are listed.
func (m *Manager) present(dev string) error {
	if m.exists(dev) {
		return nil
	}
	return fmt.Errorf("%w: %s: no such network device (discover_network, or ip link on the host, lists them)", ErrNotFound, dev)
}

// ParseIPv4 reads an IPv4 address and a netmask (dotted, 255.255.0.0, or
// a prefix length, 16) as a prefix holding the address.
func ParseIPv4(ip, netmask string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an IPv4 address (write it as 169.254.0.1)", ErrInvalid, ip)
	}
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Prefix{}, fmt.Errorf("%w: %s is not an address a device can have", ErrInvalid, a)
	}
	netmask = strings.TrimSpace(netmask)
	bits := -1
	if n, err := strconv.Atoi(strings.TrimPrefix(netmask, "/")); err == nil && n >= 1 && n <= 32 {
		bits = n
	} else if mk, err := netip.ParseAddr(netmask); err == nil && mk.Is4() {
		v := uint32(0)
		for _, b := range mk.As4() {
			v = v<<8 | uint32(b)
		}
		ones := 0
		for v&(1<<31) != 0 {
			ones++
			v <<= 1
		}
		if v == 0 && ones >= 1 {
			bits = ones
		}
	}
	if bits < 0 {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an IPv4 netmask (write it as 255.255.0.0, or a prefix length from 1 to 32)", ErrInvalid, netmask)
	}
	return netip.PrefixFrom(a, bits), nil
}

// SetIPv4 gives device dev (allowed by patterns) the IPv4 address p in
// place of the ones it has (removed first: the kernel takes a subnet's
// other addresses with its first one; when the new one fails they are
// given back). The same address again is no change.
func (m *Manager) SetIPv4(ctx context.Context, patterns []string, dev string, p netip.Prefix) error {
	return m.onDevice(ctx, patterns, dev, func(cs []Change, u *undo) ([]Change, error) {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("%w: %s is not an IPv4 address", ErrInvalid, p)
		}
		cur, err := ipv4(dev)
		if err != nil {
			return nil, err
		}
		// The old addresses go first: the kernel takes a subnet's secondary
		// addresses away with its primary one.
		for _, old := range cur {
			if old == p {
				continue
			}
			if err := m.ip(ctx, "-4", "addr", "del", old.String(), "dev", dev); err != nil {
				return nil, fmt.Errorf("take the address %s off %s: %w", old, dev, err)
			}
			u.push(func(ctx context.Context) error {
				return m.ip(ctx, "-4", "addr", "add", old.String(), "broadcast", "+", "dev", dev)
			})
		}
		if now, err := ipv4(dev); err != nil {
			return nil, err
		} else if !slices.Contains(now, p) {
			if err := m.ip(ctx, "-4", "addr", "add", p.String(), "broadcast", "+", "dev", dev); err != nil {
				return nil, fmt.Errorf("give %s the address %s: %w", dev, p, err)
			}
			u.push(func(ctx context.Context) error { return m.ip(ctx, "-4", "addr", "del", p.String(), "dev", dev) })
		}
		next := without(cs, func(c Change) bool { return c.Kind == KindAddress && c.Name == dev })
		next = append(next, Change{Kind: KindAddress, Name: dev, Address: p.String()})
		return next, nil
	})
}

// ParseNetwork reads an IPv4 network as CIDR (169.254.0.0/16; an
// address inside it, 169.254.0.1/16, names the same network).
func ParseNetwork(cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil || !p.Addr().Is4() || p.Bits() < 1 {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not an IPv4 network (write it as 169.254.0.0/16)", ErrInvalid, cidr)
	}
	return p.Masked(), nil
}

// route is one entry of ip -j route show.
type route struct {
	Dst string `json:"dst"`
	Dev string `json:"dev"`
}

// routesTo are the main table's routes to exactly network p.
func (m *Manager) routesTo(ctx context.Context, p netip.Prefix) ([]route, error) {
	out, err := m.ipOutput(ctx, "-j", "-4", "route", "show", "exact", p.String(), "table", "main")
	if err != nil {
		return nil, fmt.Errorf("read the routes to %s: %w", p, err)
	}
	var rs []route
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("read the routes to %s: ip's answer: %v", p, err)
	}
	return rs, nil
}

// SetRoute makes device dev (allowed by patterns) the way to network p
// (CloudStack's link-local network onto control0): a route in the main
// table, made when the device has none (its address may have made it
// already), and ARP turned on. A route to the same network through
// another device is removed when that device is allowed too, and refused
// (ErrBusy) when it is not.
func (m *Manager) SetRoute(ctx context.Context, patterns []string, dev string, p netip.Prefix) error {
	return m.onDevice(ctx, patterns, dev, func(cs []Change, u *undo) ([]Change, error) {
		if !p.Addr().Is4() || p.Masked() != p {
			return nil, fmt.Errorf("%w: %s is not an IPv4 network", ErrInvalid, p)
		}
		rs, err := m.routesTo(ctx, p)
		if err != nil {
			return nil, err
		}
		have := false
		var others []string
		for _, r := range rs {
			if r.Dev == dev {
				have = true
			} else if r.Dev != "" {
				if err := allowed(patterns, r.Dev); err != nil {
					return nil, fmt.Errorf("%w: the route to %s goes through %s, which is not among [agent] network_devices: remove that route on the host (ip route del %s dev %s), or allow %s", ErrBusy, p, r.Dev, p, r.Dev, r.Dev)
				}
				others = append(others, r.Dev)
			}
		}
		for _, o := range others {
			if err := m.ip(ctx, "-4", "route", "del", p.String(), "dev", o, "table", "main"); err != nil {
				return nil, fmt.Errorf("remove the route to %s through %s: %w", p, o, err)
			}
			u.push(func(ctx context.Context) error { return m.ip(ctx, "-4", "route", "add", p.String(), "dev", o) })
		}
		if !have {
			if err := m.ip(ctx, "-4", "route", "add", p.String(), "dev", dev); err != nil {
				return nil, fmt.Errorf("route %s onto %s: %w", p, dev, err)
			}
			u.push(func(ctx context.Context) error { return m.ip(ctx, "-4", "route", "del", p.String(), "dev", dev) })
		}
		if err := m.ip(ctx, "link", "set", "dev", dev, "arp", "on"); err != nil {
			return nil, fmt.Errorf("turn ARP on for %s: %w", dev, err)
		}
		c := Change{Kind: KindRoute, Name: dev, Address: p.String()}
		next := without(cs, func(x Change) bool { return x.Kind == KindRoute && x.Address == c.Address })
		next = append(next, c)
		return next, nil
	})
}

// Network is an IPv4 network the recorded changes put on a device of this
// host.
type Network struct {
	Prefix netip.Prefix
	Device string
}

// Networks are the networks of the addresses the recorded changes gave
// and of the routes they made, with their devices: CloudStack's control
// network, where its system VMs are.
func (m *Manager) Networks() ([]Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return nil, err
	}
	var ns []Network
	for _, c := range cs {
		if c.Kind != KindAddress && c.Kind != KindRoute {
			continue
		}
		if p, err := netip.ParsePrefix(c.Address); err == nil {
			n := Network{Prefix: p.Masked(), Device: c.Name}
			if !slices.Contains(ns, n) {
				ns = append(ns, n)
			}
		}
	}
	return ns, nil
}

// Restore makes again what the record lists and the kernel no longer has
// (after a reboot): bridges and VLAN devices, brought up, ports put back
// into their bridges, addresses given back. A change whose devices the
// patterns no longer allow, or that fails, is reported and kept in the
// record; it answers what was made again and what was not.
func (m *Manager) Restore(ctx context.Context, patterns []string) (restored []Change, problems []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs, err := m.Record()
	if err != nil {
		return nil, []error{err}
	}
	for _, c := range cs {
		err := allowed(patterns, c.Name)
		if err == nil && c.Kind == KindPort {
			err = allowed(patterns, c.Bridge)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("not made again: %w", err))
			continue
		}
		did, err := m.restore(ctx, c)
		if err != nil {
			problems = append(problems, err)
		} else if did {
			restored = append(restored, c)
		}
	}
	return restored, problems
}

func (m *Manager) restore(ctx context.Context, c Change) (bool, error) {
	switch c.Kind {
	case KindBridge:
		if m.exists(c.Name) {
			if !m.isBridge(c.Name) {
				return false, fmt.Errorf("make bridge %s again: %w: a device of that name that is not a bridge is there", c.Name, ErrExists)
			}
			return false, nil
		}
		if err := m.ip(ctx, "link", "add", "name", c.Name, "type", "bridge"); err != nil {
			return false, fmt.Errorf("make bridge %s again: %w", c.Name, err)
		}
		return true, m.ip(ctx, "link", "set", "dev", c.Name, "up")
	case KindVLAN:
		if m.exists(c.Name) {
			return false, nil
		}
		if !m.exists(c.Link) {
			return false, fmt.Errorf("make VLAN device %s again: %w: %s", c.Name, ErrNotFound, c.Link)
		}
		if err := m.ip(ctx, "link", "add", "link", c.Link, "name", c.Name, "type", "vlan", "id", strconv.Itoa(c.VLAN)); err != nil {
			return false, fmt.Errorf("make VLAN device %s again: %w", c.Name, err)
		}
		return true, m.ip(ctx, "link", "set", "dev", c.Name, "up")
	case KindPort:
		if !m.exists(c.Name) || !m.exists(c.Bridge) {
			return false, fmt.Errorf("put %s into bridge %s again: %w", c.Name, c.Bridge, ErrNotFound)
		}
		if mst := m.master(c.Name); mst == c.Bridge {
			return false, nil
		} else if mst != "" {
			return false, fmt.Errorf("put %s into bridge %s again: %w: it is a port of %s", c.Name, c.Bridge, ErrBusy, mst)
		}
		if !m.isBridge(c.Bridge) || m.isBridge(c.Name) {
			return false, fmt.Errorf("put %s into bridge %s again: %w: %s is not a bridge, or %s is one", c.Name, c.Bridge, ErrInvalid, c.Bridge, c.Name)
		}
		if a, err := portAddress(c.Name); err != nil {
			return false, err
		} else if a != "" {
			return false, fmt.Errorf("put %s into bridge %s again: %w: it carries the address %s now, which a bridge's port loses", c.Name, c.Bridge, ErrBusy, a)
		}
		if err := m.ip(ctx, "link", "set", "dev", c.Name, "master", c.Bridge); err != nil {
			return false, fmt.Errorf("put %s into bridge %s again: %w", c.Name, c.Bridge, err)
		}
		return true, m.ip(ctx, "link", "set", "dev", c.Name, "up")
	case KindAddress:
		p := netip.MustParsePrefix(c.Address)
		cur, err := ipv4(c.Name)
		if err != nil {
			return false, fmt.Errorf("give %s the address %s again: %w", c.Name, p, err)
		}
		if slices.Contains(cur, p) {
			return false, nil
		}
		if err := m.ip(ctx, "-4", "addr", "add", p.String(), "broadcast", "+", "dev", c.Name); err != nil {
			return false, fmt.Errorf("give %s the address %s again: %w", c.Name, p, err)
		}
		return true, nil
	}
	if c.Kind == KindRoute {
		p := netip.MustParsePrefix(c.Address)
		if !m.exists(c.Name) {
			return false, fmt.Errorf("route %s onto %s again: %w", p, c.Name, ErrNotFound)
		}
		rs, err := m.routesTo(ctx, p)
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if r.Dev == c.Name {
				return false, nil
			}
		}
		if err := m.ip(ctx, "-4", "route", "add", p.String(), "dev", c.Name); err != nil {
			return false, fmt.Errorf("route %s onto %s again: %w", p, c.Name, err)
		}
		return true, nil
	}
	return false, nil
}
