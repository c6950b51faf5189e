package qemu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// FwCfg is one file of QEMU's firmware configuration device (fw_cfg),
// given as a string: -fw_cfg name=NAME,string=VALUE. The guest reads it
// from the device, e.g. Linux's qemu_fw_cfg module under
// /sys/firmware/qemu_fw_cfg/by_name/NAME/raw (the value's bytes, no
// newline, no NUL). The engine uses it to tell a guest who runs it.
type FwCfg struct {
	Name  string // FwCfgPrefix + a key: [a-z0-9][a-z0-9._-]*
	Value string // 1 to MaxFwCfgValue printable ASCII bytes; a comma is escaped on the command line
}

// The fw_cfg files this project gives a guest: all under FwCfgPrefix.
// FwCfgGeneration is the domain's generation in the pool (the revision of
// its owner key in etcd, decimal int64), FwCfgHost the name of the agent
// that runs it, FwCfgDomain the domain's name. The test guest's recorder
// (test/guest/recorder.c) writes them into its records.
const (
	FwCfgPrefix     = "opt/org.ovs-agent/"
	FwCfgGeneration = FwCfgPrefix + "generation"
	FwCfgHost       = FwCfgPrefix + "host"
	FwCfgDomain     = FwCfgPrefix + "domain"
)

// Limits of the fw_cfg files of a Spec.
const (
	// MaxFwCfgName is QEMU's limit on a fw_cfg file name (FW_CFG_MAX_FILE_PATH
	// is 56 bytes with the NUL).
	MaxFwCfgName = 55
	// MaxFwCfgValue bounds a value: these are names and numbers, not data.
	MaxFwCfgValue = 1024
	// MaxFwCfgFiles bounds the number of files.
	MaxFwCfgFiles = 16
)

var fwCfgKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// checkFwCfg checks the fw_cfg files of a Spec: names under FwCfgPrefix,
// within QEMU's length and distinct; values printable ASCII, bounded;
// FwCfgGeneration a decimal int64 as strconv.FormatInt writes it.
func checkFwCfg(files []FwCfg) error {
	if len(files) > MaxFwCfgFiles {
		return fmt.Errorf("qemu spec: %d fw_cfg files, more than the %d this engine gives", len(files), MaxFwCfgFiles)
	}
	seen := map[string]bool{}
	for i, f := range files {
		key, ok := strings.CutPrefix(f.Name, FwCfgPrefix)
		if !ok || !fwCfgKeyRE.MatchString(key) {
			return fmt.Errorf("qemu spec: fw_cfg file %d: name %q is not %s followed by a key of a-z, 0-9, '.', '_', '-'", i, f.Name, FwCfgPrefix)
		}
		if len(f.Name) > MaxFwCfgName {
			return fmt.Errorf("qemu spec: fw_cfg file %d: name %q is %d bytes, QEMU takes at most %d", i, f.Name, len(f.Name), MaxFwCfgName)
		}
		if seen[f.Name] {
			return fmt.Errorf("qemu spec: fw_cfg file %q is given twice", f.Name)
		}
		seen[f.Name] = true
		if f.Value == "" || len(f.Value) > MaxFwCfgValue {
			return fmt.Errorf("qemu spec: fw_cfg file %s: the value is %d bytes, want 1 to %d", f.Name, len(f.Value), MaxFwCfgValue)
		}
		for _, c := range []byte(f.Value) {
			if c < 0x20 || c > 0x7e {
				return fmt.Errorf("qemu spec: fw_cfg file %s: value %q holds a byte that is not printable ASCII (0x%02x)", f.Name, f.Value, c)
			}
		}
		if f.Name == FwCfgGeneration {
			if n, err := strconv.ParseInt(f.Value, 10, 64); err != nil || strconv.FormatInt(n, 10) != f.Value {
				return fmt.Errorf("qemu spec: fw_cfg file %s: value %q is not a decimal int64", f.Name, f.Value)
			}
		}
	}
	return nil
}

// FwCfgValueOK says whether v may be a fw_cfg file's value: 1 to
// MaxFwCfgValue bytes of printable ASCII.
func FwCfgValueOK(v string) bool {
	if v == "" || len(v) > MaxFwCfgValue {
		return false
	}
	for _, c := range []byte(v) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// fwCfgArgs is the -fw_cfg options of checked files, in order; a comma in
// a value is doubled (QEMU's option syntax), so it reaches the guest as one.
func fwCfgArgs(files []FwCfg) []string {
	var a []string
	for _, f := range files {
		a = append(a, "-fw_cfg", "name="+f.Name+",string="+optEscape(f.Value))
	}
	return a
}
