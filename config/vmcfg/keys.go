package vmcfg

import "sort"

// xmKeys are the options xm's create command (Xen 3.x, as shipped with
// Oracle VM 2.x) reads from a vm.cfg file, plus the Oracle VM additions
// documented in the Oracle VM Server User's Guide. ovs-agent keeps them in
// Config.Extra without a warning; any other option gets a warning, since
// it is most likely a typo.
var xmKeys = map[string]bool{
	"access_control": true, "acpi": true, "apic": true, "bootargs": true,
	"bootentry": true, "bootloader": true, "boot": true, "builder": true,
	"cdrom": true, "cpu": true, "cpu_cap": true, "cpu_weight": true,
	"cpuid": true, "cpuid_check": true, "cpus": true, "description": true,
	"device_model": true, "dhcp": true, "disk_other_config": true,
	"display": true, "extra": true, "fda": true, "fdb": true,
	"features": true, "gateway": true, "gfx_passthru": true,
	"guest_os_type": true, "hap": true, "hostname": true, "hpet": true,
	"interface": true, "ioports": true, "ip": true, "irq": true, "isa": true,
	"kernel": true, "keymap": true, "loader": true, "localtime": true,
	"machine_address_size": true, "maxvcpus": true, "monitor": true,
	"ne2000": true, "netif": true, "netmask": true, "nfs_root": true,
	"nfs_server": true, "nics": true, "nographic": true, "nomigrate": true,
	"on_xend_start": true, "on_xend_stop": true, "oos": true, "opengl": true,
	"pae": true, "pci": true, "pci_msitranslate": true,
	"pci_power_mgmt": true, "ramdisk": true, "restart": true, "root": true,
	"rtc_timeoffset": true, "s3_integrity": true, "sdl": true,
	"security": true, "serial": true, "shadow_memory": true,
	"soundhw": true, "ssidref": true, "stdvga": true, "superpages": true,
	"suppress_spurious_page_faults": true, "target": true, "timer_mode": true,
	"tpmif": true, "tsc_mode": true, "usb": true, "usbdevice": true,
	"blkif": true, "vcpu_avail": true, "vfb": true, "vhpt": true,
	"videoram": true, "vif2": true, "vif_other_config": true,
	"viridian": true, "vnc": true, "vncconsole": true, "vncdisplay": true,
	"vnclisten": true, "vncpasswd": true, "vncunused": true,
	"vncviewer": true, "vpt_align": true, "vscsi": true, "vtpm": true,
	"vusb": true, "xauthority": true, "xen_extended_power_mgmt": true,
	"xen_platform_pci": true,
}

// suggest returns the known option closest to key (at most two edits
// away, one for short keys), for "did you mean" hints, or "".
func suggest(key string) string {
	best, bestDist := "", 3
	if len(key) < 5 {
		bestDist = 2
	}
	cands := make([]string, 0, len(xmKeys)+len(typedKeys))
	for k := range typedKeys {
		cands = append(cands, k)
	}
	for k := range xmKeys {
		cands = append(cands, k)
	}
	sort.Strings(cands) // deterministic choice between equal distances
	for _, k := range cands {
		if d := editDistance(key, k, bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, or limit when
// it is at least limit.
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	if prev[len(b)] >= limit {
		return limit
	}
	return prev[len(b)]
}
