package agent

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/ovs-agent/ovs-agent/agent/domr"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// csKeyDir is where, under the state directory, the system VM keys
// CloudStack uploads (ovs_upload_ssh_key) are kept.
const csKeyDir = "cloudstack-keys"

// csSystemKey is the name CloudStack's module gives the system VM key.
const csSystemKey = "id_rsa.cloud"

// domrTimeout bounds one exec_domr or ovs_domr_upload_file (CloudStack
// gives its router scripts 10 minutes).
const domrTimeout = domr.MaxTimeout

// maxKeys bounds the keys kept.
const maxKeys = 16

// keyNameRE is a key's file name.
var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// ovm3DomrMethods are the calls of CloudStack's agent module that reach
// its system VMs (virtual routers, console proxy, secondary storage VM)
// from the host, on the control network the network calls made
// (agent/domr).
func (a *Agent) ovm3DomrMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	onControl := " Only to an address of the control network this agent's network calls made (ovs_ip_config, ovs_control_interface: CloudStack's 169.254.0.0/16 on control0)."
	return []xmlrpc.Def{
		{Name: "ovs_upload_ssh_key", Result: xmlrpc.Boolean, Run: a.ovm3UploadKey, Params: []xmlrpc.Param{str("keyfile"), str("content")},
			Help: "CloudStack's agent module: keep the private key content (PEM, not encrypted, at most 64 KiB) as keyfile, for exec_domr and ovs_domr_upload_file: in the state directory (cloudstack-keys/<keyfile>, mode 0600), not in a home folder. Answers true."},
		{Name: "exec_domr", Result: xmlrpc.Struct, Run: a.ovm3ExecDomr, Params: []xmlrpc.Param{str("ip"), str("cmd")},
			Help: "CloudStack's agent module: run cmd on the system VM at ip over ssh (root, port 3922, the uploaded key id_rsa.cloud, else the last uploaded; its host key is not checked) and answer {rc, out, err} (exit status, output, at most 1 MiB each; at most 5 minutes)." + onControl},
		{Name: "check_domr_ssh", Result: xmlrpc.Boolean, Run: a.ovm3CheckDomrSSH, Params: []xmlrpc.Param{str("ip")},
			Help: "CloudStack's agent module: whether the system VM at ip takes the uploaded key over ssh (an empty command that exits 0)." + onControl},
		{Name: "check_domr_port", Result: xmlrpc.Boolean, Run: a.ovm3CheckPort, Params: []xmlrpc.Param{str("ip"), xmlrpc.Opt("port", xmlrpc.Int), xmlrpc.Opt("timeout", xmlrpc.Int)},
			Help: "CloudStack's agent module: whether a TCP connection to ip:port (default 3922) opens within timeout seconds (default 3, at most 10)."},
		{Name: "check_dom0_port", Result: xmlrpc.Boolean, Run: a.ovm3CheckPort, Params: []xmlrpc.Param{str("ip"), xmlrpc.Opt("port", xmlrpc.Int), xmlrpc.Opt("timeout", xmlrpc.Int)},
			Help: "CloudStack's agent module: whether a TCP connection from this host to ip:port (default 3922) opens within timeout seconds (default 3, at most 10): a system VM's ssh port, a pool's virtual IP."},
		{Name: "ping", Result: xmlrpc.Boolean, Run: a.ovm3Ping, Params: []xmlrpc.Param{str("host"), xmlrpc.Opt("count", xmlrpc.Int)},
			Help: "CloudStack's agent module: whether the IPv4 address host answers one of count (default 3, at most 10) ICMP echo requests, one a second (CloudStack's host and pool address checks)."},
		{Name: "ovs_domr_upload_file", Result: xmlrpc.Boolean, Run: a.ovm3DomrUpload, Params: []xmlrpc.Param{str("domr"), str("path"), str("file"), str("content")},
			Help: "CloudStack's agent module: write content (at most 16 MiB) into path/file on the system VM at domr, by scp over ssh as exec_domr connects; path must exist there. Answers true." + onControl},
	}
}

func (a *Agent) csKeyPath(name string) (string, error) {
	st := a.state.Load()
	if st == nil || st.cfg == nil {
		return "", xmlrpc.Faultf(xmlrpc.BadState, "the agent is still starting")
	}
	return filepath.Join(st.cfg.Agent.StateDir, csKeyDir, name), nil
}

func (a *Agent) ovm3UploadKey(_ context.Context, args xmlrpc.Args) (any, error) {
	name, content := args.String(0), args.String(1)
	if !keyNameRE.MatchString(name) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_upload_ssh_key: key name %.64q: want a file name of letters, digits, '-', '_' and '.', not starting with '.', at most 64 characters (CloudStack's is id_rsa.cloud)", name)
	}
	if _, err := domr.ParseKey([]byte(content)); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_upload_ssh_key %s: %v", name, err)
	}
	p, err := a.csKeyPath(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(p)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fileFault("ovs_upload_ssh_key", err)
	}
	// the folder and the key are the agent's alone, whatever was there
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "ovs_upload_ssh_key: %s is not a folder (a symbolic link?): remove it", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fileFault("ovs_upload_ssh_key", err)
	}
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "ovs_upload_ssh_key: %s is not a regular file: remove it", p)
	} else if errors.Is(err, fs.ErrNotExist) {
		if ents, _ := os.ReadDir(dir); len(ents) >= maxKeys {
			return nil, xmlrpc.Faultf(xmlrpc.NoResources, "ovs_upload_ssh_key: %d keys are kept already (%s): remove the ones no longer used", maxKeys, dir)
		}
	}
	if err := atomicfile.WriteFile(p, []byte(content), 0o600); err != nil {
		return nil, fileFault("ovs_upload_ssh_key", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		return nil, fileFault("ovs_upload_ssh_key", err)
	}
	a.log.Info("system VM key kept", zap.String("key", name))
	return true, nil
}

// csKey is the key exec_domr logs in with: id_rsa.cloud, else the one
// uploaded last.
func (a *Agent) csKey(method string) (ssh.Signer, error) {
	dir, err := a.csKeyPath("")
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fileFault(method, err)
	}
	type kf struct {
		name string
		mod  time.Time
	}
	var keys []kf
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && keyNameRE.MatchString(e.Name()) {
			keys = append(keys, kf{e.Name(), fi.ModTime()})
		}
	}
	if len(keys) == 0 {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: no system VM key here: upload it first (ovs_upload_ssh_key %s, as CloudStack does when it adds the host)", method, csSystemKey)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i].name == csSystemKey) != (keys[j].name == csSystemKey) {
			return keys[i].name == csSystemKey
		}
		return keys[i].mod.After(keys[j].mod)
	})
	b, err := boundedfile.ReadFile(filepath.Join(dir, keys[0].name), domr.MaxKey, boundedfile.NoFollow)
	if err != nil {
		return nil, fileFault(method, err)
	}
	s, err := domr.ParseKey(b)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: the kept key %s: %v: upload it again", method, keys[0].name, err)
	}
	return s, nil
}

// domrTarget checks that ip is on the control network and builds the
// target.
func (a *Agent) domrTarget(method, ip string) (domr.Target, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return domr.Target{}, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %.64q is not an IPv4 address (a system VM's control address, such as 169.254.3.7)", method, ip)
	}
	nets, err := a.hostnet.Networks()
	if err != nil {
		return domr.Target{}, netFault(method, err)
	}
	dev, bits := "", -1
	for _, n := range nets { // the most specific network holding addr
		if n.Prefix.Contains(addr) && n.Prefix.Bits() > bits {
			dev, bits = n.Device, n.Prefix.Bits()
		}
	}
	if dev == "" {
		if len(nets) == 0 {
			return domr.Target{}, xmlrpc.Faultf(xmlrpc.BadState, "%s: %s: this host has no control network yet: CloudStack makes it when it adds the host (ovs_local_config start control0, ovs_ip_config, ovs_control_interface, on devices [agent] network_devices allows)", method, addr)
		}
		var ps []string
		for _, n := range nets {
			ps = append(ps, n.Prefix.String()+" on "+n.Device)
		}
		return domr.Target{}, xmlrpc.Faultf(xmlrpc.AccessDenied, "%s: %s is not on this host's control network (%s): system VMs are reached there only", method, addr, strings.Join(ps, ", "))
	}
	key, err := a.csKey(method)
	if err != nil {
		return domr.Target{}, err
	}
	// bound to the control device: the connection cannot leave by another
	return domr.Target{Addr: netip.AddrPortFrom(addr, domr.Port), Key: key, Timeout: domrTimeout, Device: dev}, nil
}

func domrFault(method string, err error) error {
	code := xmlrpc.Internal
	if errors.Is(err, context.DeadlineExceeded) {
		code = xmlrpc.Timeout
	}
	return xmlrpc.Faultf(code, "%s: %v", method, err)
}

func (a *Agent) ovm3ExecDomr(ctx context.Context, args xmlrpc.Args) (any, error) {
	t, err := a.domrTarget("exec_domr", args.String(0))
	if err != nil {
		return nil, err
	}
	res, err := domr.Exec(ctx, t, args.String(1))
	if err != nil {
		return nil, domrFault("exec_domr", err)
	}
	// the command is not logged: CloudStack's carry passwords
	a.log.Info("system VM command", zap.String("ip", t.Addr.Addr().String()), zap.Int("rc", res.RC))
	// rc is <i8>: the plugin casts it to Long
	return map[string]any{"rc": xmlrpc.I8(res.RC), "out": res.Out, "err": res.Err}, nil
}

func (a *Agent) ovm3CheckDomrSSH(ctx context.Context, args xmlrpc.Args) (any, error) {
	t, err := a.domrTarget("check_domr_ssh", args.String(0))
	if err != nil {
		return nil, err
	}
	t.Timeout = 10 * time.Second
	res, err := domr.Exec(ctx, t, "")
	return err == nil && res.RC == 0, nil
}

func (a *Agent) ovm3CheckPort(ctx context.Context, args xmlrpc.Args) (any, error) {
	addr, err := netip.ParseAddr(args.String(0))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%.64q is not an IP address", args.String(0))
	}
	port := args.IntOr(1, domr.Port)
	if port < 1 || port > 65535 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "port %d: want 1 to 65535", port)
	}
	timeout := time.Duration(min(max(args.IntOr(2, 3), 1), 10)) * time.Second
	return domr.CheckPort(ctx, netip.AddrPortFrom(addr, uint16(port)), timeout), nil
}

func (a *Agent) ovm3Ping(ctx context.Context, args xmlrpc.Args) (any, error) {
	addr, err := netip.ParseAddr(args.String(0))
	if err != nil || !addr.Is4() {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ping: %.64q is not an IPv4 address", args.String(0))
	}
	ok, err := domr.Ping(ctx, addr, int(min(max(args.IntOr(1, 3), 1), 10)))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "ping: %v", err)
	}
	return ok, nil
}

func (a *Agent) ovm3DomrUpload(ctx context.Context, args xmlrpc.Args) (any, error) {
	t, err := a.domrTarget("ovs_domr_upload_file", args.String(0))
	if err != nil {
		return nil, err
	}
	dir, file := args.String(1), args.String(2)
	// CloudStack sends folders with a trailing slash (/var/cache/cloud/)
	if !path.IsAbs(dir) || slices.Contains(strings.Split(dir, "/"), "..") {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_domr_upload_file: path %.64q: want an absolute folder on the system VM, without ..", dir)
	}
	dir = path.Clean(dir)
	if !keyNameRE.MatchString(file) && !diskIDRE.MatchString(file) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_domr_upload_file: file %.64q: want a plain file name", file)
	}
	content := args.String(3)
	if len(content) > domr.MaxUpload {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "ovs_domr_upload_file: the content is %d bytes, more than %d", len(content), domr.MaxUpload)
	}
	if err := domr.Upload(ctx, t, dir, file, []byte(content)); err != nil {
		return nil, domrFault("ovs_domr_upload_file", err)
	}
	a.log.Info("system VM file written", zap.String("ip", t.Addr.Addr().String()), zap.String("file", path.Join(dir, file)), zap.Int("bytes", len(content)))
	return true, nil
}
