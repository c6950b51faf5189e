package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/manpage"
)

// ovs-vmm --man DIR writes ovs-vmm.8 with every flag run() defines, each
// with its default (not the value given now), and the exit codes.
func TestManPage(t *testing.T) {
	dir := t.TempDir()
	saved := os.Args
	defer func() { os.Args = saved }()
	os.Args = []string{"ovs-vmm", "--man", dir}
	if code := run(); code != 0 {
		t.Fatalf("ovs-vmm --man: exit %d", code)
	}
	path := filepath.Join(dir, "ovs-vmm.8")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if w, err := manpage.Warnings(path); err != nil || w != "" {
		t.Errorf("groff: %v %s", err, w)
	}
	n := 0
	flag.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "test.") {
			return // the test binary's own
		}
		n++
		def := f.DefValue
		if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
			def = `"` + def + `"` // strings are quoted
		}
		tag := `\fB--` + f.Name + `\fP`
		if !strings.Contains(page, tag+"="+def+"\n") && !strings.Contains(page, tag+"[="+def+"]\n") {
			t.Errorf("no --%s=%s on the page", f.Name, def)
		}
	})
	if n < 11 || strings.Contains(page, dir) {
		t.Errorf("%d flags; the page names the --man directory: %v", n, strings.Contains(page, dir))
	}
	for _, want := range []string{".SH EXIT STATUS\n", "\\fB3\\fP\nAn incoming migration was aborted"} {
		if !strings.Contains(page, want) {
			t.Errorf("ovs-vmm.8 lacks %q", want)
		}
	}
}
