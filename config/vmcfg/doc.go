// Package vmcfg reads and writes domain configuration files, vm.cfg, in
// the format of Xen's xm and Oracle VM 2.x.
//
// xm runs a vm.cfg file as Python. This package reads it as data instead:
// a file is a sequence of `key = value` statements (separated by newlines
// or ';') whose values are Python literals:
//
//   - strings in single, double or triple quotes, with Python 3's
//     backslash escapes (\n, \t, \\, \', \xNN, \ooo, \uNNNN, \UNNNNNNNN; an
//     unknown escape such as \d keeps its backslash), an optional r (raw)
//     or u prefix, and adjacent literals concatenated ('a' 'b' is 'ab').
//     Strings are byte strings: \xff is the byte 0xff, \u00e9 is UTF-8;
//   - integers (decimal, 0x hex, 0o octal, 0b binary, '_' between digits,
//     an optional sign); a leading zero such as 0755 is rejected, since it
//     means octal in Python 2 and is an error in Python 3;
//   - floats (1.5, .5, 1e3), True, False and None;
//   - lists [...], tuples (...) (with (x,) for one item) and dicts {...}
//     with string or integer keys, nested up to MaxDepth levels, with
//     trailing commas allowed;
//   - `#` comments, anywhere outside strings (also inside lists); newlines
//     inside brackets, and a backslash at the end of a line, continue the
//     statement.
//
// Anything else Python would run (import, if, names such as arch_libdir,
// '+' and other operators, calls) is an error naming the file and line,
// never silently ignored. Files over MaxFileSize are rejected.
//
// Options ovs-agent uses become typed fields of Config, with xend's
// defaults filled in and validated: name, uuid, memory, maxmem, vcpus,
// disk, vif, on_poweroff, on_reboot, on_crash, the ovs-agent options
// workload and memory_backing (auto, 4k, hugetlb or thp; absent: the
// host's [agent] memory_backing), and an operating system's boot and display: kernel, ramdisk,
// root, extra (Config.KernelCmdline builds "root=<root> <extra>" as
// xend), bootloader (pygrub only: the agent never runs a program a vm.cfg
// names), bootloader_args (xm: bootargs; read as pygrub's options by
// ParsePygrubArgs), builder ('linux' or 'hvm'),
// boot, serial, vfb, and an HVM guest's top-level vnc, vnclisten,
// vncunused, vncdisplay, vncpasswd, keymap and sdl, which become the same
// VFB a vfb entry gives. Workload documents that option's spec (dirty,
// hot, pattern, touch, verify, hb, seed; hot left out means all of
// memory) and ParseWorkload is its only parser: the VMM takes the parsed
// Workload (vmm/workload.ParamsFromSpec), never the string.
//
// Which guest a domain runs follows from these keys (Config.Guest): an
// operating system when kernel, bootloader or builder = 'hvm' is set, the
// workload guest otherwise; a file that asks for both is an error. For
// builder = 'hvm' a kernel is a direct kernel boot of the HVM guest,
// except Xen's hvmloader (the guide's chapter 4.6), which names Xen's
// firmware: it is not applied (a warning) and the guest boots QEMU's.
//
// Every other option is kept in Config.Others and written back by
// Marshal. Options that neither xm nor ovs-agent knows produce a
// Warning, with a "did you mean" hint for likely typos; options xm knows
// that this agent keeps but does not apply (pci, cpus, cpu_cap, ... see
// notApplied for the reason of each), and options that do not fit the
// guest (a display for the workload guest, a boot order without builder =
// 'hvm', a vif's script or rate for an operating system), produce a
// Warning "not applied by this agent: <reason>". The workload guest's
// disk and vif entries are not among them: the agent checks them on
// migration.
//
// Disk.DeclaredFormat says which image format a tap: type declares
// (QEMU's names; "" to detect), and VIF.BridgeOn which bridge a vif
// without bridge= gets on a host (xend's rule: xenbr0, else the first).
//
// A VNC password (vncpasswd, in a vfb entry or at top level) is a secret:
// no Error or Warning shows it, and Config.Redacted gives a copy whose
// Marshal text is safe for a log.
// When a key is assigned twice the last value wins, as in xm, with a
// warning.
//
// Every error names the file, the line and the key
// (`vm.cfg:7: memory: "lots" is not an integer number of MiB`), and Parse
// reports all of them, up to MaxErrors.
//
// Config.Marshal writes a canonical file that Parse reads back to an equal
// Config; the agent uses it to persist domains.
//
// This package owns only the file format and its validation. It does not
// resolve disk paths, pick MAC addresses or check what the host can run;
// of this module it imports only config (Suggest, for "did you mean") and
// internal/boundedfile (ParseFile's read: regular files only, never
// blocking, at most MaxFileSize).
package vmcfg
