package vmcfg

import (
	"sort"

	"github.com/ovs-agent/ovs-agent/config"
)

// xmKeys are the options xm's create command (Xen 3.x, as shipped with
// Oracle VM 2.x) reads from a vm.cfg file, plus the Oracle VM additions
// documented in the Oracle VM Server User's Guide. ovs-agent keeps them in
// Config.Others without a warning; any other option gets a warning, since
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
	limit := 3
	if len(key) < 5 {
		limit = 2
	}
	cands := make([]string, 0, len(xmKeys)+len(typedKeys))
	for k := range typedKeys {
		cands = append(cands, k)
	}
	for k := range xmKeys {
		cands = append(cands, k)
	}
	sort.Strings(cands) // deterministic choice between equal distances
	return config.Suggest(key, cands, limit)
}
