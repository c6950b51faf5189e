package test

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file is a client of the Oracle VM Agent 3 API of the project's
// own, written from the shapes in agent/ovm3/PROTOCOL.md: it sends raw
// XML-RPC and keeps the XML type of every value it gets back, so that a
// test can tell <nil/> from an empty string and <i8> from <int>.

// o3Value is one decoded value with its XML-RPC type.
type o3Value struct {
	Type    string // int, i8, boolean, string, double, struct, array, nil, ...
	Text    string
	Members map[string]o3Value
	Items   []o3Value
}

func (v o3Value) String() string {
	switch v.Type {
	case "struct":
		keys := make([]string, 0, len(v.Members))
		for k := range v.Members {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %s, ", k, v.Members[k])
		}
		return b.String() + "}"
	case "array":
		parts := make([]string, len(v.Items))
		for i, it := range v.Items {
			parts[i] = it.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return v.Type + "(" + v.Text + ")"
}

// o3Node is a generic XML element, for both the XML-RPC answer and the
// XML documents some calls return in a string.
type o3Node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []o3Node   `xml:",any"`
}

func (n o3Node) child(name string) (o3Node, bool) {
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			return c, true
		}
	}
	return o3Node{}, false
}

// path follows child names from n ("Server/VMM/Version").
func (n o3Node) path(p string) (o3Node, bool) {
	cur := n
	for _, name := range strings.Split(p, "/") {
		var ok bool
		if cur, ok = cur.child(name); !ok {
			return o3Node{}, false
		}
	}
	return cur, true
}

// leaves is what a client reading by XPath gets for a node: the text of
// every child that has no element children of its own.
func (n o3Node) leaves() map[string]string {
	out := map[string]string{}
	for _, c := range n.Children {
		if len(c.Children) == 0 {
			out[c.XMLName.Local] = c.Text
		}
	}
	return out
}

func (n o3Node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func parseDoc(t *testing.T, what, s string) o3Node {
	t.Helper()
	var n o3Node
	if err := xml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatalf("%s: not a well-formed XML document: %v\n%s", what, err, s)
	}
	return n
}

func o3Decode(n o3Node) o3Value {
	// n is a <value>.
	var typed *o3Node
	for i := range n.Children {
		typed = &n.Children[i]
		break
	}
	if typed == nil {
		return o3Value{Type: "string", Text: n.Text}
	}
	v := o3Value{Type: typed.XMLName.Local, Text: typed.Text}
	switch v.Type {
	case "struct":
		v.Members = map[string]o3Value{}
		for _, m := range typed.Children {
			name, _ := m.child("name")
			val, _ := m.child("value")
			v.Members[name.Text] = o3Decode(val)
		}
	case "array":
		data, _ := typed.child("data")
		for _, it := range data.Children {
			v.Items = append(v.Items, o3Decode(it))
		}
	}
	return v
}

func o3Encode(b *strings.Builder, v any) {
	b.WriteString("<value>")
	switch x := v.(type) {
	case nil:
		b.WriteString("<nil/>")
	case string:
		b.WriteString("<string>")
		xml.EscapeText(b2w{b}, []byte(x))
		b.WriteString("</string>")
	case int:
		fmt.Fprintf(b, "<int>%d</int>", x)
	case o3I8:
		fmt.Fprintf(b, "<i8>%d</i8>", x)
	case bool:
		if x {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case []string:
		b.WriteString("<array><data>")
		for _, s := range x {
			o3Encode(b, s)
		}
		b.WriteString("</data></array>")
	case map[string]any:
		b.WriteString("<struct>")
		for k, m := range x {
			b.WriteString("<member><name>" + k + "</name>")
			o3Encode(b, m)
			b.WriteString("</member>")
		}
		b.WriteString("</struct>")
	default:
		panic(fmt.Sprintf("o3Encode %T", v))
	}
	b.WriteString("</value>")
}

// o3I8 is sent as <i8>, as Apache XML-RPC sends a Java Long.
type o3I8 int64

type b2w struct{ b *strings.Builder }

func (w b2w) Write(p []byte) (int, error) { return w.b.Write(p) }

// o3Fault is a fault answer.
type o3Fault struct {
	Code    int
	Message string
}

func (f *o3Fault) Error() string { return fmt.Sprintf("fault %d: %s", f.Code, f.Message) }

// o3Client calls an agent the way an agent 3 manager does: HTTP Basic
// credentials, one POST path.
type o3Client struct {
	url, user, pass string
}

// call returns the answer's value, or a fault, or fails the test on
// anything that is neither.
func (c o3Client) call(t *testing.T, method string, params ...any) (o3Value, *o3Fault) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?><methodCall><methodName>` + method + `</methodName><params>`)
	for _, p := range params {
		b.WriteString("<param>")
		o3Encode(&b, p)
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>")
	req, _ := http.NewRequest("POST", c.url, strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/xml")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	hc := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the agent's self-signed certificate
	}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var doc o3Node
	if err := xml.Unmarshal(body, &doc); err != nil || doc.XMLName.Local != "methodResponse" {
		t.Fatalf("%s: HTTP %d, not a methodResponse: %v\n%s", method, resp.StatusCode, err, body)
	}
	if f, ok := doc.child("fault"); ok {
		v, _ := f.child("value")
		fv := o3Decode(v)
		code, _ := strconv.Atoi(fv.Members["faultCode"].Text)
		if fv.Members["faultCode"].Type != "int" || fv.Members["faultString"].Type != "string" || fv.Members["faultString"].Text == "" {
			t.Fatalf("%s: malformed fault %s", method, fv)
		}
		return o3Value{}, &o3Fault{Code: code, Message: fv.Members["faultString"].Text}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s: HTTP %d with a result", method, resp.StatusCode)
	}
	v, ok := doc.path("params/param/value")
	if !ok {
		t.Fatalf("%s: no result in %s", method, body)
	}
	return o3Decode(v), nil
}

// ok calls a method that must succeed.
func (c o3Client) ok(t *testing.T, method string, params ...any) o3Value {
	t.Helper()
	v, f := c.call(t, method, params...)
	if f != nil {
		t.Fatalf("%s%v: %v", method, params, f)
	}
	return v
}

// done calls an action, which must answer <nil/>.
func (c o3Client) done(t *testing.T, method string, params ...any) {
	t.Helper()
	if v := c.ok(t, method, params...); v.Type != "nil" {
		t.Fatalf("%s%v answered %s, want <nil/>", method, params, v)
	}
}

// refused calls a method that must fail with code.
func (c o3Client) refused(t *testing.T, code int, method string, params ...any) string {
	t.Helper()
	_, f := c.call(t, method, params...)
	if f == nil || f.Code != code {
		t.Fatalf("%s%v: %v, want fault %d", method, params, f, code)
	}
	return f.Message
}

// TestOVM3 walks CloudStack's add-host calls and a VM's lifecycle through
// the Oracle VM Agent 3 names, against one agent on the sim engine with
// one repository.
func TestOVM3(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "rebooted")
	pw := filepath.Join(t.TempDir(), "peer-pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	a := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent":      {"hypervisor = sim", "memory_reserve = 0", "sys_reboot_command = /usr/bin/touch " + marker},
		"relocation": {"peer_password_file = " + pw},
		"auth":       {"failed_login_delay = 0s"}, // the throttle has tests of its own
	}})
	// The second host, over HTTPS, for the migration.
	dstReloc := freePort(t, "127.0.0.3")
	b := startAgent(t, agentConf{Listen: "127.0.0.3", SSL: true, RelocPort: dstReloc, Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"auth":  {"failed_login_delay = 0s"},
	}})
	base := "http://" + a.Addr
	c := o3Client{url: base + "/", user: "admin", pass: testPassword}

	// The same names on every POST path; the API user and password.
	for _, p := range []string{"/", "/RPC2", "/api/3/"} {
		cp := c
		cp.url = base + p
		if v := cp.ok(t, "echo", "put <&> here"); v.Type != "string" || v.Text != "put <&> here" {
			t.Fatalf("echo on %s: %s", p, v)
		}
	}
	anon := c
	anon.user = ""
	if msg := anon.refused(t, 1000, "echo", "x"); !strings.Contains(msg, "password") {
		t.Errorf("unauthenticated: %q", msg)
	}
	wrong := c
	wrong.pass = "not-it"
	wrong.refused(t, 1000, "echo", "x")

	// Common.
	o3Shape(t, "get_api_version", c.ok(t, "get_api_version"))
	if v := c.ok(t, "get_api_version"); v.Type != "array" || len(v.Items) == 0 || v.Items[0].Type != "int" || v.Items[0].Text != "3" {
		t.Fatalf("get_api_version: %s", v)
	}
	c.done(t, "sleep", 0)
	c.refused(t, -32602, "sleep", 301)
	c.refused(t, -32602, "sleep", "1")

	// dispatch: a call forwarded to another agent (b, over HTTPS).
	peer := "https://admin:" + testPassword + "@" + b.Addr + "/api/3/"
	if v := c.ok(t, "dispatch", peer, "echo", []string{"via b"}); v.Type != "string" || v.Text != "via b" {
		t.Errorf("dispatch echo: %s", v)
	}
	if v := c.ok(t, "dispatch", peer, "get_api_version"); v.Type != "array" || v.Items[0].Text != "3" {
		t.Errorf("dispatch get_api_version: %s", v)
	}
	if msg := c.refused(t, 1000, "dispatch", "https://admin:wrong-pw@"+b.Addr+"/", "echo", []string{"x"}); strings.Contains(msg, "wrong-pw") {
		t.Errorf("dispatch fault shows the password: %q", msg)
	}
	c.refused(t, -32602, "dispatch", "unix://"+b.Socket, "echo", []string{"x"})
	c.refused(t, -32602, "dispatch", peer, "dispatch", []string{peer, "echo"})
	c.refused(t, -32602, "dispatch", peer, "domain.destroy", []string{"x"})

	// Host.
	srv := c.ok(t, "discover_server")
	o3Shape(t, "discover_server", srv)
	if srv.Type != "string" {
		t.Fatalf("discover_server: %s", srv)
	}
	root := parseDoc(t, "discover_server", srv.Text)
	server, ok := root.path("Server")
	if root.XMLName.Local != "Discover_Server_Result" || !ok {
		t.Fatalf("discover_server document: %s", srv.Text)
	}
	host, _ := os.Hostname()
	l := server.leaves()
	for _, k := range []string{"Agent_Version", "OS_Name", "Host_Kernel_Release", "Hypervisor_Name", "Membership_State", "Unique_Id", "Boot_Time", "Registered_IP"} {
		if l[k] == "" {
			t.Errorf("discover_server: Server/%s is empty or missing", k)
		}
	}
	if !strings.HasPrefix(l["OVM_Version"], "3.2.") { // what CloudStack's plugin requires
		t.Errorf("discover_server: OVM_Version %q", l["OVM_Version"])
	}
	if l["Hostname"] != host || l["Membership_State"] != "Unowned" || l["Registered_IP"] != "127.0.0.2" || l["Is_Current_Master"] != "false" {
		t.Errorf("discover_server leaves: %v", l)
	}
	if ver, ok := server.path("VMM/Version"); !ok || ver.leaves()["Major"] == "" {
		t.Errorf("discover_server: no VMM/Version/Major")
	}
	if vmmNode, _ := server.child("VMM"); !strings.Contains(" "+vmmNode.leaves()["Capabilities"]+" ", " sim ") {
		t.Errorf("discover_server: VMM/Capabilities %q, want the engines (sim here)", vmmNode.leaves()["Capabilities"])
	}
	if capab, ok := server.path("Capabilities"); !ok || capab.leaves()["NFS"] != "True" || capab.leaves()["VM_SUSPEND"] != "True" {
		t.Errorf("discover_server: Capabilities %v", capab.leaves())
	}
	if dt, ok := server.path("Date_Time"); !ok || dt.leaves()["Time_Zone"] == "" {
		t.Errorf("discover_server: no Date_Time/Time_Zone")
	}

	hw := c.ok(t, "discover_hardware")
	o3Shape(t, "discover_hardware", hw)
	hroot := parseDoc(t, "discover_hardware", hw.Text)
	phys, ok := hroot.path("NodeInformation/VMM/PhysicalInfo")
	if hroot.XMLName.Local != "Discover_Hardware_Result" || !ok {
		t.Fatalf("discover_hardware document: %s", hw.Text)
	}
	pl := phys.leaves()
	num := func(k string) int64 {
		n, err := strconv.ParseInt(pl[k], 10, 64)
		if err != nil {
			t.Errorf("discover_hardware: PhysicalInfo/%s = %q", k, pl[k])
		}
		return n
	}
	procs, _ := hroot.path("NodeInformation/CPUInfo/Proc_Info")
	if got := num("ThreadsPerCore") * num("CoresPerSocket") * num("SocketsPerNode"); got != int64(len(procs.Children)) || got < 1 {
		t.Errorf("discover_hardware: topology %v gives %d CPUs, CPUInfo lists %d", pl, got, len(procs.Children))
	}
	if num("TotalPages") <= 0 || num("FreePages") <= 0 || num("FreePages") > num("TotalPages") || num("CPUKHz") <= 0 {
		t.Errorf("discover_hardware: %v", pl)
	}
	if _, ok := hroot.path("NodeInformation/DMTF/System"); !ok {
		t.Errorf("discover_hardware: no DMTF/System")
	}

	// No [pool]: in no server pool, and none is made over the API.
	if p := parseDoc(t, "discover_server_pool", c.ok(t, "discover_server_pool").Text); p.XMLName.Local != "Discover_Server_Pool_Result" || len(p.Children) != 0 {
		t.Errorf("discover_server_pool outside a pool: %+v", p)
	}
	if msg := c.refused(t, 1007, "create_server_pool", "Pool 0", strings.Repeat("a", 32), "192.0.2.10", 1, "ovm-1", "127.0.0.2", "xen,utility"); !strings.Contains(msg, "[pool]") {
		t.Errorf("create_server_pool: %q", msg)
	}

	br := testBridge(t)
	nw := parseDoc(t, "discover_network", c.ok(t, "discover_network").Text)
	active, ok := nw.path("Network/Active")
	if nw.XMLName.Local != "Discover_Network_Result" || !ok {
		t.Fatalf("discover_network: %+v", nw)
	}
	bridges, _ := active.child("Bridges")
	foundBr := false
	for _, d := range bridges.Children {
		if d.attr("Name") == br {
			fam, _ := d.child("Family")
			foundBr = fam.leaves()["MAC"] != ""
		}
	}
	physNet, _ := active.child("Network")
	if !foundBr || len(physNet.Children) == 0 || physNet.Children[0].leaves()["MAC"] == "" {
		t.Errorf("discover_network: bridge %s found %v; physical devices %+v", br, foundBr, physNet)
	}
	c.refused(t, 1007, "ovs_vlan_bridge", "start", "xenbr0.160", "xenbr0", 160)

	boot := c.ok(t, "get_last_boot_time")
	o3Shape(t, "get_last_boot_time", boot)
	lb, lt := boot.Members["last_boot_time"], boot.Members["local_time"]
	if lb.Type != "i8" || lt.Type != "i8" {
		t.Fatalf("get_last_boot_time: %s, want both members <i8>", boot)
	}
	bt, _ := strconv.ParseInt(lb.Text, 10, 64)
	now, _ := strconv.ParseInt(lt.Text, 10, 64)
	if bt <= 0 || bt > now || now < time.Now().Add(-time.Hour).Unix() {
		t.Errorf("get_last_boot_time: %s", boot)
	}
	o3Shape(t, "get_timezone", c.ok(t, "get_timezone"))
	if tz := c.ok(t, "get_timezone"); len(tz.Items) != 2 || tz.Items[0].Type != "string" || tz.Items[0].Text == "" || tz.Items[1].Type != "boolean" {
		t.Errorf("get_timezone: %s", tz)
	}

	ntp := c.ok(t, "get_ntp")
	o3Shape(t, "get_ntp", ntp)
	if len(ntp.Items) != 3 || ntp.Items[0].Type != "array" || ntp.Items[1].Type != "boolean" || ntp.Items[2].Type != "boolean" {
		t.Errorf("get_ntp: %s", ntp)
	}
	c.refused(t, 1007, "set_ntp", []string{"127.0.0.1"}, true)

	// Power: refused unless agent.ini names a command; run when it does.
	if msg := c.refused(t, 1007, "sys_shutdown"); !strings.Contains(msg, "sys_shutdown_command") {
		t.Errorf("sys_shutdown: %q", msg)
	}
	c.done(t, "sys_reboot")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("sys_reboot did not run its command: %v", err)
	}

	// A repository, made and mounted as an operator does.
	script, _ := filepath.Abs("../scripts/ovs-makerepo")
	repoSrc := t.TempDir()
	out, code := runCmd(t, "", []string{"OVS_AGENT_BIN=" + bin("ovs-agent"), "OVS_AGENT_CONFIG=" + a.Config}, script, repoSrc, "1", "ovm3 repository")
	if code != 0 {
		t.Fatalf("ovs-makerepo (exit %d): %s", code, out)
	}
	uuid := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	st := a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	repo := strings.ReplaceAll(uuid, "-", "")

	mfs := c.ok(t, "discover_mounted_file_systems", "")
	o3Shape(t, "discover_mounted_file_systems", mfs)
	mroot := parseDoc(t, "discover_mounted_file_systems", mfs.Text)
	found := false
	for _, fs := range mroot.Children {
		for _, m := range fs.Children {
			if m.attr("Dir") == "/OVS/Repositories/"+repo {
				found = true
				if d, ok := m.child("Device"); !ok || d.Text == "" {
					t.Errorf("mount of the repository without a Device: %+v", m)
				}
			}
		}
		if fs.XMLName.Local != "Filesystem" || fs.attr("Type") == "" {
			t.Errorf("discover_mounted_file_systems: %s", mfs.Text)
		}
	}
	if !found {
		t.Errorf("discover_mounted_file_systems does not list /OVS/Repositories/%s:\n%s", repo, mfs.Text)
	}

	// copy_file, inside the repositories only.
	disks := filepath.Join(st.MountPoint, "VirtualDisks")
	os.MkdirAll(disks, 0o755)
	f, _ := os.Create(filepath.Join(disks, "template.raw"))
	f.Truncate(64 << 20)
	f.WriteAt([]byte("boot sector"), 0)
	f.WriteAt([]byte("the end"), 64<<20-7)
	f.Close()
	vd := "/OVS/Repositories/" + repo + "/VirtualDisks/"
	c.done(t, "copy_file", vd+"template.raw", vd+"root.raw", true)
	got, _ := os.ReadFile(filepath.Join(disks, "root.raw"))
	want, _ := os.ReadFile(filepath.Join(disks, "template.raw"))
	if !bytes.Equal(got, want) {
		t.Errorf("copy_file: the copy differs (%d bytes, want %d)", len(got), len(want))
	}
	if fi, err := os.Stat(filepath.Join(disks, "root.raw")); err != nil || fi.Sys().(*syscall.Stat_t).Blocks*512 > 8<<20 {
		t.Errorf("copy_file sparse: holes not kept (%v)", err)
	}
	c.refused(t, 1004, "copy_file", vd+"template.raw", vd+"root.raw", true)
	c.refused(t, 1001, "copy_file", "/etc/passwd", vd+"passwd", true)
	// Not even into [agent] file_dirs, which the harness sets to the
	// test's temporary folders: repositories only.
	c.refused(t, 1001, "copy_file", vd+"template.raw", filepath.Join(t.TempDir(), "out.raw"), true)
	c.refused(t, 1001, "copy_file", vd+"../../../etc/passwd", vd+"x.raw", true)
	os.Symlink("/etc/passwd", filepath.Join(disks, "link.raw"))
	c.refused(t, 1001, "copy_file", vd+"link.raw", vd+"x.raw", true)
	if _, err := os.Stat(filepath.Join(disks, "x.raw")); !os.IsNotExist(err) {
		t.Errorf("a refused copy_file left x.raw: %v", err)
	}

	// The storage plugin's file calls, inside the repositories.
	nfs := "oracle.generic.NFSPlugin.GenericNFSPlugin"
	ss := map[string]any{"uuid": repo, "storage_type": "FileSys", "access_host": "cs-mgmt"}
	sd := map[string]any{"uuid": uuid, "ss_uuid": repo, "state": 2}
	fp := c.ok(t, "storage_plugin_create", nfs, ss, sd, vd+"vol1.raw", "File", o3I8(1<<30))
	o3Shape(t, "storage_plugin_create", fp)
	if fp.Members["file_sz"].Text != "1073741824" || fp.Members["file_sz"].Type != "string" || fp.Members["fr_type"].Text != "File" || fp.Members["file_path"].Text != vd+"vol1.raw" {
		t.Errorf("storage_plugin_create: %s", fp)
	}
	if fi, err := os.Stat(filepath.Join(disks, "vol1.raw")); err != nil || fi.Size() != 1<<30 || fi.Sys().(*syscall.Stat_t).Blocks > 64 {
		t.Errorf("storage_plugin_create made %v, %v (want a sparse 1 GiB file)", fi, err)
	}
	c.refused(t, 1004, "storage_plugin_create", nfs, ss, sd, vd+"vol1.raw", "File", o3I8(1<<30))
	c.refused(t, 1007, "storage_plugin_create", "oracle.s_iscsi.SCSIPlugin.SCSIPlugin", ss, sd, vd+"vol2.raw", "File", 1)
	c.refused(t, 1001, "storage_plugin_create", nfs, ss, sd, filepath.Join(t.TempDir(), "vol.raw"), "File", 1)
	c.refused(t, 1001, "storage_plugin_create", nfs, ss, sd, vd+"../../../../tmp/vol.raw", "File", 1)
	info := c.ok(t, "storage_plugin_getFileInfo", nfs, ss, sd, map[string]any{"file_path": vd + "vol1.raw"})
	o3Shape(t, "storage_plugin_getFileInfo", info)
	if info.Members["file_sz"].Text != "1073741824" || info.Members["fs_uuid"].Text != uuid {
		t.Errorf("storage_plugin_getFileInfo: %s", info)
	}
	c.done(t, "storage_plugin_destroy", nfs, ss, sd, map[string]any{"file_path": vd + "vol1.raw"})
	if _, err := os.Stat(filepath.Join(disks, "vol1.raw")); !os.IsNotExist(err) {
		t.Errorf("storage_plugin_destroy left the file: %v", err)
	}
	c.refused(t, 1002, "storage_plugin_getFileInfo", nfs, ss, sd, map[string]any{"file_path": vd + "vol1.raw"})
	c.refused(t, -32602, "storage_plugin_destroy", nfs, ss, sd, map[string]any{"file_path": vd})
	// Secondary storage: NFS does not mount on this machine, the fault
	// says so and nothing stays (test/ovm3_secondary_test.go mounts a
	// local file system there).
	if msg := c.refused(t, 1003, "storage_plugin_mount", nfs, ss, map[string]any{"access_path": "cs-mgmt:/export"}, "/nfsmnt/x", "", true, []string{}); !strings.Contains(msg, "cs-mgmt:/export") {
		t.Errorf("storage_plugin_mount of an NFS export that does not mount: %q", msg)
	}
	if _, err := os.Lstat(filepath.Join(a.Dir, "nfsmnt", "x")); !os.IsNotExist(err) {
		t.Errorf("a failed storage_plugin_mount left its mount point: %v", err)
	}

	// A VM's lifecycle.
	vmID := "868a6627-c3b0-3d9b-aea4-f279cbaa253b"
	params := map[string]any{
		"name": "i-2-3-VM", "OVM_simple_name": "i-2-3-VM", "uuid": vmID, "memory": "64", "vcpus": 1,
		"on_reboot": "restart", "on_poweroff": "destroy", "on_crash": "restart", "OVM_domain_type": "xen_pvm",
		"OVM_high_availability": false, "OVM_description": "", "cpu_weight": 27500, "cpu_cap": 0,
		"guest_os_type": "Other Linux", "vif": []string{}, "workload": "dirty=1M/s,hot=8M",
	}
	c.refused(t, -32602, "create_vm", "not-a-repo", vmID, params)
	c.refused(t, 1002, "create_vm", strings.Repeat("0", 32), vmID, params)
	c.refused(t, -32602, "create_vm", repo, "../escape", params)
	c.refused(t, -32602, "create_vm", repo, ".hidden", params)
	// An operating system's disk outside the repositories is refused, and
	// nothing is left. (The workload guest opens no disks.)
	bad := map[string]any{"name": "evil", "uuid": "11111111-2222-4333-8444-555555555555", "memory": "64", "vcpus": 1,
		"bootloader": "/usr/bin/pygrub", "disk": []string{"file:/etc/shadow,xvda,w"}}
	if msg := c.refused(t, 1010, "create_vm", repo, "11111111-2222-4333-8444-555555555555", bad); !strings.Contains(msg, "/etc/shadow") {
		t.Errorf("create_vm with /etc/shadow as a disk: %q", msg)
	}
	if _, err := os.Stat(filepath.Join(st.MountPoint, "VirtualMachines", "11111111-2222-4333-8444-555555555555")); !os.IsNotExist(err) {
		t.Errorf("a refused create_vm left its folder: %v", err)
	}
	// A vm.cfg string cannot smuggle in a key.
	sneaky := map[string]any{"name": "sneaky", "memory": "64", "vcpus": 1, "OVM_description": "x'\nkernel = '/etc/shadow"}
	c.done(t, "create_vm", repo, "22222222-2222-4333-8444-555555555555", sneaky)
	if m := c.ok(t, "get_vm_config", repo, "22222222-2222-4333-8444-555555555555").Members; m["kernel"].Type != "" || m["OVM_description"].Text != "x'\nkernel = '/etc/shadow" {
		t.Errorf("get_vm_config of a vm with a quote in a string: %v", m)
	}
	c.done(t, "delete_vm", repo, "22222222-2222-4333-8444-555555555555")
	c.done(t, "create_vm", repo, vmID, params)
	cfgPath := filepath.Join(st.MountPoint, "VirtualMachines", vmID, "vm.cfg")
	if _, err := os.Stat(cfgPath); err != nil {
		t.Fatalf("create_vm wrote no vm.cfg in the repository: %v", err)
	}
	c.refused(t, 1004, "create_vm", repo, vmID, params)

	// The repository as agent 3 describes it.
	dbv := c.ok(t, "discover_repository_db")
	o3Shape(t, "discover_repository_db", dbv)
	db := parseDoc(t, "discover_repository_db", dbv.Text)
	var entry o3Node
	for _, r := range db.Children[0].Children {
		if r.attr("Uuid") == repo {
			entry = r
		}
	}
	if e := entry.leaves(); e["Mount_point"] != "/OVS/Repositories/"+repo || e["Status"] != "Mounted" || e["Fs_location"] != repoSrc || e["Alias"] != "ovm3 repository" {
		t.Errorf("discover_repository_db: %v", e)
	}
	rdv := c.ok(t, "discover_repositories", repo)
	o3Shape(t, "discover_repositories", rdv)
	rd := parseDoc(t, "discover_repositories", rdv.Text)
	r0, _ := rd.path("RepositoryList/Repository")
	vmsNode, _ := r0.child("VirtualMachines")
	disksNode, _ := r0.child("VirtualDisks")
	if r0.attr("Name") != repo || r0.leaves()["Repository_UUID"] != repo || len(vmsNode.Children) != 1 || vmsNode.Children[0].attr("Name") != vmID || len(disksNode.Children) != 2 || disksNode.Children[0].Text != "root.raw" { // link.raw, a symlink, is not listed
		t.Errorf("discover_repositories: %+v", r0)
	}
	c.refused(t, 1002, "discover_repositories", strings.Repeat("1", 32))

	cfg := c.ok(t, "get_vm_config", repo, vmID)
	o3Shape(t, "get_vm_config", cfg)
	for _, k := range []string{"vif", "disk", "vfb"} {
		if cfg.Members[k].Type != "array" {
			t.Errorf("get_vm_config: %s is %s, want an array", k, cfg.Members[k])
		}
	}
	if m := cfg.Members["memory"]; m.Type != "int" || m.Text != "64" || cfg.Members["name"].Text != "i-2-3-VM" || cfg.Members["OVM_simple_name"].Text != "i-2-3-VM" {
		t.Errorf("get_vm_config: %s", cfg)
	}
	if v, _ := c.call(t, "list_vm", repo, vmID); v.Type != "nil" {
		t.Errorf("list_vm of a stopped vm: %s, want <nil/>", v)
	}

	c.done(t, "start_vm", repo, vmID)
	vms := c.ok(t, "list_vms")
	o3Shape(t, "list_vms", vms)
	o3Shape(t, "list_vm", c.ok(t, "list_vm", repo, vmID))
	byName := map[string]o3Value{}
	for _, v := range vms.Items {
		byName[v.Members["name"].Text] = v
	}
	dom0, guest := byName["Domain-0"], byName["i-2-3-VM"]
	if dom0.Type != "struct" || guest.Type != "struct" || len(vms.Items) != 2 {
		t.Fatalf("list_vms: %s", vms)
	}
	if guest.Members["state"].Text != "r-----" || guest.Members["uuid"].Text != vmID || guest.Members["memory"].Text != "64" || guest.Members["memory"].Type != "string" {
		t.Errorf("list_vms guest: %s", guest)
	}
	if dev := guest.Members["device"]; dev.Type != "struct" || dev.Members["vbd"].Type != "array" || dev.Members["vif"].Type != "array" {
		t.Errorf("list_vms guest device: %s", dev)
	}
	c.refused(t, 1003, "configure_vm", repo, vmID, params)
	c.refused(t, 1007, "configure_vm_ha", repo, vmID, true)
	// CloudStack's module calls that read the host.
	if v := c.ok(t, "get_vncport", "i-2-3-VM"); v.Type != "string" || v.Text != "0" { // the workload guest has no display
		t.Errorf("get_vncport: %s", v)
	}
	c.refused(t, 1002, "get_vncport", "i-9-9-VM")
	d0 := c.ok(t, "ovs_dom0_stats", "lo")
	o3Shape(t, "ovs_dom0_stats", d0)
	if v := d0; v.Members["total"].Type != "string" || v.Members["total"].Text == "0" || v.Members["rx"].Text == "" || v.Members["cpu"].Text == "" {
		t.Errorf("ovs_dom0_stats: %s", v)
	}
	c.refused(t, -32602, "ovs_dom0_stats", "../../etc")
	// ovs_domU_stats: counters as strings, growing; the workload guest
	// has no disks or interfaces, so those count 0.
	u1 := c.ok(t, "ovs_domU_stats", "i-2-3-VM")
	o3Shape(t, "ovs_domU_stats", u1)
	for _, k := range []string{"cputime", "uptime", "vcpus", "rd_bytes", "wr_bytes", "rd_ops", "wr_ops", "rx_bytes", "tx_bytes"} {
		if v := u1.Members[k]; v.Type != "string" {
			t.Errorf("ovs_domU_stats %s: %s, want a string", k, v)
		} else if _, err := strconv.ParseInt(v.Text, 10, 64); err != nil {
			t.Errorf("ovs_domU_stats %s: %q is not an integer", k, v.Text)
		}
	}
	time.Sleep(200 * time.Millisecond)
	u2 := c.ok(t, "ovs_domU_stats", "i-2-3-VM")
	count := func(v o3Value, k string) int64 { n, _ := strconv.ParseInt(v.Members[k].Text, 10, 64); return n }
	if u2.Members["vcpus"].Text != "1" || count(u2, "uptime") <= count(u1, "uptime") || count(u2, "cputime") < count(u1, "cputime") || count(u2, "cputime") == 0 || count(u2, "rd_ops") != 0 {
		t.Errorf("ovs_domU_stats of a running workload guest, 200 ms apart: %s then %s", u1, u2)
	}
	c.refused(t, 1002, "ovs_domU_stats", "i-9-9-VM")
	c.refused(t, 1002, "ovs_dom0_stats", "nosuchdev0")
	if v := c.ok(t, "check_dom0_ip", "127.0.0.1"); v.Type != "boolean" || v.Text != "1" {
		t.Errorf("check_dom0_ip 127.0.0.1: %s", v)
	}
	if v := c.ok(t, "check_dom0_ip", "192.0.2.77"); v.Text != "0" {
		t.Errorf("check_dom0_ip 192.0.2.77: %s", v)
	}
	c.done(t, "pause_vm", repo, vmID)
	if v := c.ok(t, "list_vm", repo, vmID); v.Members["state"].Text != "--p---" {
		t.Errorf("list_vm after pause_vm: %s", v)
	}
	c.done(t, "unpause_vm", repo, vmID)
	before := c.ok(t, "list_vm", repo, vmID).Members["domid"].Text
	c.done(t, "reboot_vm", repo, vmID, 3) // the workload guest stops at once when asked
	if v := c.ok(t, "list_vm", repo, vmID); v.Members["state"].Text != "r-----" || v.Members["domid"].Text == before {
		t.Errorf("list_vm after reboot_vm: %s (domid before %s: a new VMM expected)", v, before)
	}
	c.done(t, "stop_vm", repo, vmID, true)
	if v, _ := c.call(t, "list_vm", repo, vmID); v.Type != "nil" {
		t.Errorf("list_vm after stop_vm: %s", v)
	}
	// Stopped, its vm.cfg changes; the next start runs the new one.
	params["memory"] = "96"
	c.done(t, "configure_vm", repo, vmID, params)
	if m := c.ok(t, "get_vm_config", repo, vmID).Members["memory"]; m.Text != "96" {
		t.Errorf("get_vm_config after configure_vm: memory %s", m)
	}
	c.done(t, "start_vm", repo, vmID)
	if v := c.ok(t, "list_vm", repo, vmID); v.Members["memory"].Text != "96" {
		t.Errorf("list_vm after configure_vm and start_vm: %s", v)
	}
	c.refused(t, 1003, "delete_vm", repo, vmID)
	// save_vm and restore_vm, the image in the vm's folder.
	c.refused(t, 1007, "save_vm", repo, vmID, true)
	c.done(t, "save_vm", repo, vmID, false)
	image := filepath.Join(filepath.Dir(cfgPath), "vm.save")
	if v, _ := c.call(t, "list_vm", repo, vmID); v.Type != "nil" {
		t.Errorf("list_vm after save_vm: %s", v)
	}
	if _, err := os.Stat(image); err != nil {
		t.Fatalf("save_vm wrote no image: %v", err)
	}
	c.done(t, "restore_vm", repo, vmID, true)
	if v := c.ok(t, "list_vm", repo, vmID); v.Members["state"].Text != "--p---" {
		t.Errorf("list_vm after restore_vm paused: %s", v)
	}
	if _, err := os.Stat(image); !os.IsNotExist(err) {
		t.Errorf("restore_vm left the image: %v", err)
	}
	c.done(t, "unpause_vm", repo, vmID)

	// To the second host, which has the same repository (shared storage).
	bc := o3Client{url: "https://" + b.Addr + "/api/3/", user: "admin", pass: testPassword}
	if msg := bc.refused(t, 1010, "add_repository", repoSrc, "/OVS/Repositories/"+strings.Repeat("0", 32)); !strings.Contains(msg, repo) {
		t.Errorf("add_repository with another id: %q", msg)
	}
	if r := b.repos(t); len(r.Repositories) != 0 {
		t.Errorf("a refused add_repository left %+v", r.Repositories)
	}
	bc.done(t, "add_repository", repoSrc, "/OVS/Repositories/"+repo)
	b.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	c.refused(t, 1002, "migrate_vm", repo, "no-such-vm", "127.0.0.3:"+strconv.Itoa(dstReloc), true, false)
	c.done(t, "migrate_vm", repo, vmID, "127.0.0.3:"+strconv.Itoa(dstReloc), true, false)
	if v, _ := c.call(t, "list_vm", repo, vmID); v.Type != "nil" {
		t.Errorf("list_vm on the source after migrate_vm: %s", v)
	}
	if v := bc.ok(t, "list_vm", repo, vmID); v.Members["state"].Text != "r-----" || v.Members["memory"].Text != "96" {
		t.Errorf("list_vm on the target after migrate_vm: %s", v)
	}
	if m := bc.ok(t, "get_vm_config", repo, vmID).Members["memory"]; m.Text != "96" {
		t.Errorf("get_vm_config on the target: memory %s", m)
	}
	bc.done(t, "stop_vm", repo, vmID, true)
	bc.done(t, "delete_vm", repo, vmID)
	if _, err := os.Stat(filepath.Dir(cfgPath)); !os.IsNotExist(err) {
		t.Errorf("delete_vm left %s: %v", filepath.Dir(cfgPath), err)
	}
	c.refused(t, 1002, "get_vm_config", repo, vmID)
	c.refused(t, 1002, "start_vm", repo, vmID)
	for _, ag := range []*Agent{a, b} {
		var names []string
		ag.call(t, "xend.domains", &names)
		if len(names) != 0 {
			t.Errorf("domains left after delete_vm: %v", names)
		}
	}
	bc.refused(t, 1007, "delete_repository", repo, true)
	bc.done(t, "delete_repository", repo, false)
	if r := b.repos(t); len(r.Repositories) != 0 {
		t.Errorf("delete_repository left %+v", r.Repositories)
	}
	if _, err := os.Stat(filepath.Join(repoSrc, ".ovsrepo")); err != nil {
		t.Errorf("delete_repository touched the repository's contents: %v", err)
	}
	if v := bc.ok(t, "get_last_boot_time"); v.Members["local_time"].Type != "i8" {
		t.Errorf("get_last_boot_time over HTTPS: %s", v)
	}
}
