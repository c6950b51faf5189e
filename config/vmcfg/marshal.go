package vmcfg

import (
	"strconv"
	"strings"
)

// Marshal renders c as a canonical vm.cfg file that Parse reads back to a
// Config equal to c (see Config.Equal). The typed options come first, in a
// fixed order and all explicit (defaults included), then the Others options
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
	if c.MemoryBacking != "" {
		assign(KeyMemoryBacking, quotePython(c.MemoryBacking))
	}
	c.marshalOS(assign)
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
	if len(c.VFBs) > 0 {
		writeList(&b, KeyVFB, stringsOf(c.VFBs))
	}
	if c.WorkloadSpec != DefaultWorkload() {
		assign(KeyWorkload, quotePython(c.WorkloadSpec.String()))
	}
	for _, k := range sortedOtherKeys(c.Others) {
		assign(k, c.Others[k].Value.String())
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

// marshalOS writes the operating system's boot options that are set
// (builder and serial only when not the default).
func (c *Config) marshalOS(assign func(key, val string)) {
	if c.builder() != BuilderLinux {
		assign(KeyBuilder, quotePython(c.Builder))
	}
	for _, o := range []struct{ key, val string }{
		{KeyKernel, c.Kernel}, {KeyRamdisk, c.Ramdisk}, {KeyRoot, c.Root}, {KeyExtra, c.Extra},
		{KeyBootloader, c.Bootloader}, {KeyBootloaderArgs, c.BootloaderArgs}, {KeyBoot, c.Boot},
	} {
		if o.val != "" {
			assign(o.key, quotePython(o.val))
		}
	}
	if c.serial() != SerialPTY {
		assign(KeySerial, quotePython(c.Serial))
	}
}
