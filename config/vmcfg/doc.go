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
// disk, vif, on_poweroff, on_reboot, on_crash, and the ovs-agent option
// workload. Workload documents that option's spec (dirty, hot, pattern,
// touch, verify, hb, seed; hot left out means all of memory) and
// ParseWorkload is its only parser: the VMM takes the parsed Workload
// (vmm/workload.ParamsFromSpec), never the string. Every other option is
// kept in Config.Extra and written back by Marshal; options that neither
// xm nor ovs-agent knows also produce a Warning, with a "did you mean"
// hint for likely typos.
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
