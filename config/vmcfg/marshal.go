package vmcfg

import (
	"strconv"
	"strings"
)

// Marshal renders c as a canonical vm.cfg file that Parse reads back to a
// Config equal to c (see Config.Equal). The typed options come first, in a
// fixed order and all explicit (defaults included), then the Extra options
// in the order of their lines. Comments and the layout of the original
// file are not kept; Disks, VIFs and the workload are written from their
// fields, not from their Raw text.
//
// c must be valid (Validate returns nil); otherwise the output may not
// parse.
func (c *Config) Marshal() []byte {
	var b strings.Builder
	b.WriteString("# Domain configuration written by ovs-agent.\n")
	assign := func(key, val string) {
		b.WriteString(key)
		b.WriteString(" = ")
		b.WriteString(val)
		b.WriteByte('\n')
	}
	assign(KeyName, quotePython(c.Name))
	if c.UUID != "" {
		assign(KeyUUID, quotePython(c.UUID))
	}
	assign(KeyMemory, strconv.Itoa(c.Memory))
	assign(KeyMaxMem, strconv.Itoa(c.MaxMem))
	assign(KeyVCPUs, strconv.Itoa(c.VCPUs))
	assign(KeyOnPoweroff, quotePython(c.OnPoweroff))
	assign(KeyOnReboot, quotePython(c.OnReboot))
	assign(KeyOnCrash, quotePython(c.OnCrash))
	if len(c.Disks) > 0 {
		items := make([]string, len(c.Disks))
		for i, d := range c.Disks {
			items[i] = d.String()
		}
		writeList(&b, KeyDisk, items)
	}
	if len(c.VIFs) > 0 {
		items := make([]string, len(c.VIFs))
		for i, v := range c.VIFs {
			items[i] = v.String()
		}
		writeList(&b, KeyVIF, items)
	}
	if c.WorkloadSpec != DefaultWorkload() {
		assign(KeyWorkload, quotePython(c.WorkloadSpec.String()))
	}
	for _, k := range sortedExtraKeys(c.Extra) {
		assign(k, c.Extra[k].Value.String())
	}
	return []byte(b.String())
}

// writeList writes a list of strings one item per line.
func writeList(b *strings.Builder, key string, items []string) {
	b.WriteString(key)
	b.WriteString(" = [\n")
	for _, it := range items {
		b.WriteString("    ")
		b.WriteString(quotePython(it))
		b.WriteString(",\n")
	}
	b.WriteString("]\n")
}
