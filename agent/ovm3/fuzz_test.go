package ovm3

import (
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// FuzzConfigText: whatever string a caller sends as a vm.cfg value, under
// whatever key, the vm.cfg written holds that key with that value and
// nothing else: a value never adds or changes another key.
func FuzzConfigText(f *testing.F) {
	for _, s := range [][2]string{{"OVM_description", "x'\nmemory = 9\n#"}, {"extra", `\'"""`}, {"OVM_simple_name", "a\\"}, {"k", "\x00\r\n'''"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, key, val string) {
		text, err := ConfigText(map[string]any{"name": "fz", "memory": int64(64), key: val})
		if err != nil {
			return // a key that is not a name
		}
		cfg, err := vmcfg.Parse("vm.cfg", text)
		if err != nil {
			return // the value is not valid for a typed key (vmcfg says why)
		}
		if key == "name" || key == "memory" {
			return
		}
		if cfg.Name != "fz" || cfg.Memory != 64 {
			t.Fatalf("%q = %q changed name or memory:\n%s", key, val, text)
		}
		if o, ok := cfg.Others[key]; ok {
			if len(cfg.Others) != 1 || o.Value.Str != val {
				t.Fatalf("%q = %q came back as %+v:\n%s", key, val, cfg.Others, text)
			}
		} else if len(cfg.Others) != 0 {
			t.Fatalf("%q = %q added %+v:\n%s", key, val, cfg.Others, text)
		}
	})
}
