package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOVM3ImportVirtualDisk: import_virtual_disk downloads an image from an
// http server (on 127.0.0.1, with basic authentication and a token in the
// query, neither of which reaches the log) into the repository's
// VirtualDisks, sparse; an existing disk, a missing image, one larger
// than the free space and a call cancelled half way leave nothing.
func TestOVM3ImportVirtualDisk(t *testing.T) {
	image := append(bytes.Repeat([]byte{0}, 4<<20), bytes.Repeat([]byte("disk data"), 8000)...)
	image = append(image, make([]byte, 1<<20)...)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "cloud" || p != "s3cret-pw" || r.URL.Query().Get("token") != "tok-s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/tmpl/disk.raw":
			http.ServeContent(w, r, "disk.raw", time.Time{}, bytes.NewReader(image))
		case "/tmpl/huge.raw":
			w.Header().Set("Content-Length", "1125899906842624") // 1 PiB
			w.WriteHeader(http.StatusOK)
		case "/tmpl/slow.raw":
			w.Header().Set("Content-Length", "10485760")
			w.Write(make([]byte, 1<<20))
			w.(http.Flusher).Flush()
			started <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	base := strings.Replace(srv.URL, "http://", "http://cloud:s3cret-pw@", 1)
	url := func(path string) string { return base + path + "?token=tok-s3cret" }

	a := startAgent(t, agentConf{Extra: map[string][]string{"auth": {"failed_login_delay = 0s"}}})
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	const repo = "0004fb0000030000aeaca859e4a8f8c2"
	pdir := t.TempDir()
	c.done(t, "create_repository", pdir, "/OVS/Repositories/"+repo, repo, "primary")
	a.waitRepo(t, repo, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	disks := filepath.Join(pdir, "VirtualDisks")
	names := func() []string {
		ents, _ := os.ReadDir(disks)
		var ns []string
		for _, e := range ents {
			ns = append(ns, e.Name())
		}
		return ns
	}

	c.done(t, "import_virtual_disk", url("/tmpl/disk.raw"), "0004fb00001200001.img", repo)
	got, err := os.ReadFile(filepath.Join(disks, "0004fb00001200001.img"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(image) {
		t.Fatalf("the imported disk: %d bytes, %v; want the %d bytes served", len(got), err, len(image))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(disks, "0004fb00001200001.img"), &st); err != nil || st.Blocks*512 > int64(len(image))/2 {
		t.Errorf("the imported disk takes %d bytes on disk for %d bytes: its zeros were written, not kept as holes", st.Blocks*512, len(image))
	}
	if d := c.ok(t, "discover_repositories", repo).Text; !strings.Contains(d, "0004fb00001200001.img") {
		t.Errorf("discover_repositories does not list the imported disk:\n%s", d)
	}

	// Refused, each leaving VirtualDisks as it is, none quoting the
	// credentials.
	var faults []string
	refused := func(code int, params ...any) string {
		t.Helper()
		msg := c.refused(t, code, "import_virtual_disk", params...)
		faults = append(faults, msg)
		return msg
	}
	// a partial file a killed agent left is swept by the next import
	stale := filepath.Join(disks, ".old.img.part-ABCDEFGHIJKLMNOP")
	os.WriteFile(stale, []byte("left over"), 0o644)
	c.refused(t, 1004, "import_virtual_disk", url("/tmpl/disk.raw"), "0004fb00001200001.img", repo)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale partial file is still there: %v", err)
	}
	refused(1002, url("/tmpl/none.raw"), "d2.img", repo)
	if msg := refused(-32602, srv.URL+"/tmpl/disk.raw", "d2.img", repo); !strings.Contains(msg, "user:password") { // 401 without the credentials
		t.Errorf("a 401: %q", msg)
	}
	if msg := refused(1005, url("/tmpl/huge.raw"), "d3.img", repo); !strings.Contains(msg, "free space") {
		t.Errorf("an image larger than the free space: %q", msg)
	}
	refused(-32602, "http://cloud:s3cret/pw@127.0.0.1/tmpl/disk.raw", "d3.img", repo) // a / in the password
	refused(-32602, strings.Replace(url("/tmpl/disk.raw"), "http:", "ftp:", 1), "d3.img", repo)
	for _, f := range faults {
		if strings.Contains(f, "s3cret") {
			t.Errorf("a fault quotes the credentials: %q", f)
		}
	}
	c.refused(t, -32602, "import_virtual_disk", "ftp://127.0.0.1/disk.raw", "d4.img", repo)
	c.refused(t, -32602, "import_virtual_disk", "/etc/passwd", "d4.img", repo)
	c.refused(t, -32602, "import_virtual_disk", url("/tmpl/disk.raw"), "../../etc/d4", repo)
	c.refused(t, -32602, "import_virtual_disk", url("/tmpl/disk.raw"), ".hidden", repo)
	c.refused(t, -32602, "import_virtual_disk", url("/tmpl/disk.raw"), "d4.img", repo, "sparse=1")
	c.refused(t, 1002, "import_virtual_disk", url("/tmpl/disk.raw"), "d4.img", "0004fb0000030000aeaca859e4a8f8ff")
	if got := names(); len(got) != 1 || got[0] != "0004fb00001200001.img" {
		t.Fatalf("after the refused imports VirtualDisks holds %v", got)
	}

	// A call given up half way: the partial file goes.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		body := `<?xml version="1.0"?><methodCall><methodName>import_virtual_disk</methodName><params>` +
			`<param><value><string>` + strings.ReplaceAll(url("/tmpl/slow.raw"), "&", "&amp;") + `</string></value></param>` +
			`<param><value><string>d5.img</string></value></param><param><value><string>` + repo + `</string></value></param></params></methodCall>`
		req, _ := http.NewRequestWithContext(ctx, "POST", c.url, strings.NewReader(body))
		req.SetBasicAuth(c.user, c.pass)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow import did not reach the server in 30s")
	}
	for wait := time.Now().Add(10 * time.Second); len(names()) != 2 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := names(); len(got) != 2 || !strings.HasPrefix(got[0], ".d5.img.part-") {
		t.Fatalf("during the slow import VirtualDisks holds %v, want its hidden partial file too", got)
	}
	refused(1006, url("/tmpl/disk.raw"), "d5.img", repo) // the same disk, while it is imported
	if d := c.ok(t, "discover_repositories", repo).Text; strings.Contains(d, ".d5.img") {
		t.Errorf("discover_repositories lists the partial file:\n%s", d)
	}
	cancel()
	<-done
	deadline := time.Now().Add(15 * time.Second)
	for len(names()) != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := names(); len(got) != 1 {
		t.Fatalf("after a cancelled import VirtualDisks holds %v", got)
	}

	for _, secret := range []string{"s3cret-pw", "tok-s3cret"} {
		if strings.Contains(a.Log(), secret) {
			t.Errorf("the agent's log holds %q", secret)
		}
	}
	if len(logLines(a.Log(), "virtual disk imported")) != 1 {
		t.Errorf("no \"virtual disk imported\" line")
	}
}
