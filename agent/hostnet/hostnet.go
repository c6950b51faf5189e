package hostnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
)

// The kinds of error a caller tells apart.
var (
	// ErrInvalid: a device name, VLAN id, address or netmask that is not
	// one.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotAllowed: a device name the patterns do not allow.
	ErrNotAllowed = errors.New("device not allowed")
	// ErrNotFound: a device that does not exist.
	ErrNotFound = errors.New("no such device")
	// ErrBusy: a device in use (a port of another bridge, a bridge with
	// ports this package did not add, a device with IPv4 addresses).
	ErrBusy = errors.New("device busy")
	// ErrExists: a device of that name exists and is not what was asked
	// for (a bridge's name taken by a device that is not a bridge).
	ErrExists = errors.New("device exists")
	// ErrNotMade: a device the stop would remove that this package did not
	// make (the host's own).
	ErrNotMade = errors.New("device not made by this agent")
	// ErrUnsupported: the kernel lacks what the change needs (802.1Q).
	ErrUnsupported = errors.New("not supported by the kernel")
	// ErrRecord: the record of changes cannot be read or written.
	ErrRecord = errors.New("network record")
)

// commandTimeout bounds each ip command.
const commandTimeout = 10 * time.Second

// maxRecord bounds the record file read at start.
const maxRecord = 1 << 20

// maxChanges bounds the record: more changes than this is not a
// manager's network.
const maxChanges = 4096

// nameRE is a device name this package makes or names: what the kernel
// takes (at most 15 bytes, IFNAMSIZ-1) in the characters device names
// use.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$`)

// Kinds of change in the record.
const (
	KindBridge  = "bridge"  // Name: a bridge this package made
	KindVLAN    = "vlan"    // Name: Link.VLAN, a VLAN device it made
	KindPort    = "port"    // Name put into Bridge
	KindAddress = "address" // Address (CIDR) given to Name
	KindRoute   = "route"   // Address, a network, routed onto Name
)

// Change is one change of the record, in the order it was made.
type Change struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Link    string `json:"link,omitempty"`
	VLAN    int    `json:"vlan,omitempty"`
	Bridge  string `json:"bridge,omitempty"`
	Address string `json:"address,omitempty"`
}

// Config is what a Manager needs.
type Config struct {
	// RecordFile is where the record of changes is kept.
	RecordFile string
	// IP is the ip program; "" finds it on PATH, /usr/sbin or /sbin.
	IP string
	// SysClassNet is where the kernel lists its network devices;
	// "" is /sys/class/net.
	SysClassNet string
}

// Manager makes the changes, one at a time.
type Manager struct {
	cfg Config
	mu  sync.Mutex
	// writeFile writes the record (atomicfile.WriteFile; tests make it
	// fail).
	writeFile func(path string, data []byte, perm fs.FileMode) error
}

// New is a Manager; nothing is read or run until a call.
func New(cfg Config) *Manager {
	if cfg.SysClassNet == "" {
		cfg.SysClassNet = "/sys/class/net"
	}
	return &Manager{cfg: cfg, writeFile: atomicfile.WriteFile}
}

// CheckName checks that name is a device name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q is not a network device name: 1 to 15 letters, digits, '_', '.' or '-', not starting with '.' or '-'", ErrInvalid, name)
	}
	return nil
}

// CheckVLAN checks a VLAN id.
func CheckVLAN(id int) error {
	if id < 1 || id > 4094 {
		return fmt.Errorf("%w: VLAN id %d: want 1 to 4094", ErrInvalid, id)
	}
	return nil
}

// VLANName is the name of the VLAN device id on dev.
func VLANName(dev string, id int) string { return dev + "." + strconv.Itoa(id) }

func allowed(patterns []string, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return nil
		}
	}
	if len(patterns) == 0 {
		return fmt.Errorf("%w: %s: this agent changes no network device ([agent] network_devices is empty; list the devices a manager may make or change, such as control0 xenbr* eth1.*, or make %s on the host)", ErrNotAllowed, name, name)
	}
	return fmt.Errorf("%w: %s is not among [agent] network_devices (%s): add it there, or make the change on the host", ErrNotAllowed, name, strings.Join(patterns, " "))
}

// --- the kernel's view

func (m *Manager) exists(name string) bool {
	_, err := os.Lstat(filepath.Join(m.cfg.SysClassNet, name))
	return err == nil
}

func (m *Manager) isBridge(name string) bool {
	_, err := os.Stat(filepath.Join(m.cfg.SysClassNet, name, "bridge"))
	return err == nil
}

// master is the bridge (or bond) name is a port of; "" for none.
func (m *Manager) master(name string) string {
	l, err := os.Readlink(filepath.Join(m.cfg.SysClassNet, name, "master"))
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// ports are a bridge's ports.
func (m *Manager) ports(br string) []string {
	ents, _ := os.ReadDir(filepath.Join(m.cfg.SysClassNet, br, "brif"))
	var ps []string
	for _, e := range ents {
		ps = append(ps, e.Name())
	}
	return ps
}

// ipv4 are a device's IPv4 addresses as CIDR prefixes.
func ipv4(name string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("read the addresses of %s: %v", name, err)
	}
	var ps []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP.To4())
		ones, _ := ipn.Mask.Size()
		ps = append(ps, netip.PrefixFrom(ip, ones))
	}
	return ps, nil
}

// portAddress is an address of device name that it would lose as a
// bridge's port: an IPv4 one, or an IPv6 one that is not link-local;
// "" when it has none.
func portAddress(name string) (string, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNotFound, name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return "", fmt.Errorf("read the addresses of %s: %v", name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if ok && (ipn.IP.To4() != nil || !ipn.IP.IsLinkLocalUnicast()) {
			return ipn.String(), nil
		}
	}
	return "", nil
}

// --- running ip

func (m *Manager) ipProgram() (string, error) {
	if m.cfg.IP != "" {
		return m.cfg.IP, nil
	}
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: iproute2's ip program is not installed (apt-get install iproute2)", ErrUnsupported)
}

func (m *Manager) ip(ctx context.Context, args ...string) error {
	_, err := m.ipOutput(ctx, args...)
	return err
}

// maxIPOutput bounds what is read of one ip command's output.
const maxIPOutput = 1 << 20

// ipOutput runs ip and answers its standard output.
func (m *Manager) ipOutput(ctx context.Context, args ...string) ([]byte, error) {
	prog, err := m.ipProgram()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, prog, args...)
	var out, stderr boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + out.String())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		if cctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("ip %s: no answer in %s", strings.Join(args, " "), commandTimeout)
		}
		if strings.Contains(msg, "Unknown device type") {
			return nil, kernelLacks{fmt.Sprintf("ip %s: %s", strings.Join(args, " "), msg)}
		}
		return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	return out.Bytes(), nil
}

// boundedBuffer keeps the first maxIPOutput bytes written to it.
type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxIPOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// kernelLacks is ip's answer that the kernel has no such device type: an
// ErrUnsupported whose message is ip's alone.
type kernelLacks struct{ msg string }

func (e kernelLacks) Error() string        { return e.msg }
func (e kernelLacks) Is(target error) bool { return target == ErrUnsupported }

// --- the record

// Record is the changes made, in order.
func (m *Manager) Record() ([]Change, error) {
	b, err := os.ReadFile(m.cfg.RecordFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrRecord, m.cfg.RecordFile, err)
	}
	if len(b) > maxRecord {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes: not one this agent wrote; move it away", ErrRecord, m.cfg.RecordFile, maxRecord)
	}
	var r struct {
		Changes []Change `json:"changes"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid (%v): move it away (the devices it lists stay as they are)", ErrRecord, m.cfg.RecordFile, err)
	}
	for _, c := range r.Changes {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("%w: %s: %v: move it away", ErrRecord, m.cfg.RecordFile, err)
		}
	}
	return r.Changes, nil
}

func (c Change) check() error {
	if CheckName(c.Name) != nil {
		return fmt.Errorf("change %+v: bad device name", c)
	}
	switch c.Kind {
	case KindBridge:
	case KindVLAN:
		if CheckName(c.Link) != nil || CheckVLAN(c.VLAN) != nil || VLANName(c.Link, c.VLAN) != c.Name {
			return fmt.Errorf("change %+v: bad VLAN", c)
		}
	case KindPort:
		if CheckName(c.Bridge) != nil {
			return fmt.Errorf("change %+v: bad bridge", c)
		}
	case KindAddress:
		if p, err := netip.ParsePrefix(c.Address); err != nil || !p.Addr().Is4() {
			return fmt.Errorf("change %+v: bad address", c)
		}
	case KindRoute:
		if p, err := netip.ParsePrefix(c.Address); err != nil || !p.Addr().Is4() || p.Masked() != p {
			return fmt.Errorf("change %+v: bad network", c)
		}
	default:
		return fmt.Errorf("change %+v: unknown kind", c)
	}
	return nil
}

func (m *Manager) save(cs []Change) error {
	if len(cs) > maxChanges {
		return fmt.Errorf("%w: the network record holds %d changes already; stop what is no longer used", ErrBusy, maxChanges)
	}
	b, err := json.MarshalIndent(struct {
		Changes []Change `json:"changes"`
	}{cs}, "", "  ")
	if err != nil {
		return err
	}
	if err := m.writeFile(m.cfg.RecordFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrRecord, err)
	}
	return nil
}

func has(cs []Change, c Change) bool { return slices.Contains(cs, c) }

func without(cs []Change, drop func(Change) bool) []Change {
	return slices.DeleteFunc(slices.Clone(cs), drop)
}

// made reports whether the record says this package made device name.
func made(cs []Change, name string) bool {
	return slices.ContainsFunc(cs, func(c Change) bool {
		return (c.Kind == KindBridge || c.Kind == KindVLAN) && c.Name == name
	})
}

// --- undo

// undo runs the steps taken so far in reverse (best effort: an undo that
// fails leaves the device as the error says).
type undo []func(context.Context) error

func (u *undo) push(f func(context.Context) error) { *u = append(*u, f) }

func (u undo) run() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
	defer cancel()
	for i := len(u) - 1; i >= 0; i-- {
		_ = u[i](ctx)
	}
}
