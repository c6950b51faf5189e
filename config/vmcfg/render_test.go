package vmcfg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRewriteVMCfg(t *testing.T) {
	src := "# head\nname = 'a' # trailing\nx = [1,\n  # inner\n  2]; uuid = \"u\"\ns = '''tri\nple = 'q' '''\nname = r'b\\'c'\n"
	spans, ok := statementSpans(src)
	if !ok {
		t.Fatal("not followed")
	}
	var keys []string
	for _, s := range spans {
		keys = append(keys, s.key+"="+src[s.start:s.end])
	}
	want := []string{"name=name = 'a'", "x=x = [1,\n  # inner\n  2]", "uuid=uuid = \"u\"", "s=s = '''tri\nple = 'q' '''", "name=name = r'b\\'c'"}
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Errorf("spans\n%q\nwant\n%q", keys, want)
	}
	out, ok := rewriteVMCfg(src, map[string]string{"name": "'n'", "uuid": "'v'", "vif": "[]"}, []string{"name", "uuid", "vif"})
	if !ok {
		t.Fatal("rewrite failed")
	}
	if want := "# head\n # trailing\nx = [1,\n  # inner\n  2]; uuid = 'v'\ns = '''tri\nple = 'q' '''\nname = 'n'\nvif = []\n"; out != want {
		t.Errorf("rewrite\n%q\nwant\n%q", out, want)
	}
	for _, bad := range []string{"x = 'open\n", "x = [1,\n", "x = )\n", "x = '''never"} {
		if _, ok := statementSpans(bad); ok {
			t.Errorf("statementSpans(%q) followed a broken file", bad)
		}
	}
	if pyQuote("it's \\ \x01 é") != `'it\'s \\ \x01 é'` {
		t.Errorf("pyQuote = %s", pyQuote("it's \\ \x01 é"))
	}
}

// FuzzRender: templates come from outside (downloaded, copied from
// other servers). Whatever a template's vm.cfg holds, the vm.cfg written
// for the new domain parses back to exactly the intended configuration.
func FuzzRender(f *testing.F) {
	// The real-world vm.cfg files the vmcfg package tests with.
	files, _ := filepath.Glob("testdata/*.cfg")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name = 'a' # c\nx = [1,\n  # inner\n  2]; uuid = \"u\"\ns = '''tri\nple = 'q' '''\nname = r'b\\'c'\n"))
	f.Add([]byte("name='t';vif=['']\\\n;disk=['file:/OVS/seed_pool/t/System.img,xvda,w']"))
	f.Add([]byte("name = 't'\nvif = [ 'mac=00:16:3e:00:00:01, bridge=xenbr0' ]\nvif = []\n"))
	f.Add([]byte("name = 't'\nextra = b'\\x00' u'\\u00e9' R\"\\\"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		statementSpans(string(data))
		cfg, err := Parse("vm.cfg", data)
		if err != nil {
			return
		}
		want := *cfg
		want.Name, want.UUID = "new-name", "0004fb00-0006-0000-0000-000000000003"
		want.VIFs = append([]VIF(nil), cfg.VIFs...)
		for i := range want.VIFs {
			v := &want.VIFs[i]
			params := map[string]string{}
			for k, val := range v.Params {
				params[k] = val
			}
			mac := fmt.Sprintf("00:16:3e:00:00:%02x", i%256)
			params["mac"], v.MAC = mac, mac
		}
		out := Render(data, &want)
		got, err := Parse("out.cfg", out)
		if err != nil {
			t.Fatalf("written vm.cfg does not parse: %v\n%s", err, out)
		}
		if !got.Equal(&want) {
			t.Fatalf("written vm.cfg differs from the intent\n%s", out)
		}
	})
}
