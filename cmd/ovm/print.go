package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// printStruct prints a struct as aligned "key: value" lines, sorted.
func printStruct(w io.Writer, m map[string]any) {
	keys := make([]string, 0, len(m))
	width := 0
	for k := range m {
		keys = append(keys, k)
		width = max(width, len(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%-*s  %s\n", width+1, k+":", formatScalar(k, m[k]))
	}
}

// printValue prints any decoded value readably.
func printValue(w io.Writer, indent string, v any) {
	switch x := v.(type) {
	case map[string]any:
		printStruct(w, x)
	case []any:
		for _, e := range x {
			fmt.Fprintf(w, "%s- %s\n", indent, formatScalar("", e))
		}
	default:
		fmt.Fprintln(w, formatScalar("", v))
	}
}

// formatScalar formats one value of a struct the agent returned; key (the
// member's name) says its unit, by the API's naming: *_ms milliseconds,
// *_seconds seconds, *_bytes, bytes_*, memory_*, swap_*, size and free
// bytes, memory, maxmem, memory_target and *_mib MiB, the rates bytes/s.
func formatScalar(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case bool:
		return fmt.Sprint(x)
	case time.Time:
		return x.Format(time.RFC3339)
	case int64, float64:
		return formatNumber(key, num(x), x)
	case []any:
		s := make([]string, len(x))
		for i, e := range x {
			s[i] = formatScalar("", e)
		}
		return strings.Join(s, " ")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := make([]string, len(keys))
		for i, k := range keys {
			s[i] = k + "=" + formatScalar(k, x[k])
		}
		return strings.Join(s, " ")
	}
	return fmt.Sprint(v)
}

// formatNumber formats the number f (raw, as decoded) in the unit key names.
func formatNumber(key string, f float64, raw any) string {
	switch {
	case isMiB(key):
		return mibText(int64(f))
	case isBytes(key):
		return sizeText(int64(f))
	case isRate(key):
		return rateText(f)
	case strings.HasSuffix(key, "_ms"):
		return msText(f)
	case strings.HasSuffix(key, "_seconds"):
		return secondsText(f)
	}
	if i, ok := raw.(int64); ok {
		return fmt.Sprint(i)
	}
	return fmt.Sprintf("%.2f", f)
}

func isMiB(key string) bool {
	switch key {
	case "memory", "maxmem", "memory_target":
		return true
	}
	return strings.HasSuffix(key, "_mib")
}

func isBytes(key string) bool {
	switch key {
	case "size", "free":
		return true
	}
	return strings.HasPrefix(key, "memory_") || strings.HasPrefix(key, "swap_") || strings.HasPrefix(key, "bytes_") || strings.HasSuffix(key, "_bytes")
}

func isRate(key string) bool {
	switch key {
	case "dirty_rate", "throughput", "bandwidth", "link_throughput", "target_memory_rate":
		return true
	}
	return false
}

// The units ovm prints, one helper each, used by every command: sizes
// in B, KiB, MiB, GiB, TiB (binary, one decimal, none when whole); rates
// as sizes per second; durations in ms below a second, s below a minute,
// then h/m/s.

// sizeText is n bytes in binary units: "512 B", "1.5 KiB", "128 MiB".
func sizeText(n int64) string {
	const unit = 1024
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	if n < unit {
		return fmt.Sprintf("%s%d B", neg, n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	s := strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/float64(div)), ".0")
	return fmt.Sprintf("%s%s %ciB", neg, s, "KMGTPE"[exp])
}

// mibText is a size the API gives in MiB (a domain's memory).
func mibText(mib int64) string { return sizeText(mib << 20) }

// rateText is bytes per second, "-" for none.
func rateText(bps float64) string {
	if bps <= 0 {
		return "-"
	}
	return sizeText(int64(bps)) + "/s"
}

// durationText is d as ovm prints every duration: "0.4 ms", "12.5 ms",
// "300 ms", "1.25 s", "4m05s", "2h03m04s", "3d04h05m".
func durationText(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + durationText(-d)
	case d < time.Second:
		return trimZero(fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))) + " ms"
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm%02ds", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%dd%02dh%02dm", s/86400, s/3600%24, s/60%60)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

// secondsText is a duration the API gives in seconds.
func secondsText(sec float64) string {
	return durationText(time.Duration(sec * float64(time.Second)))
}

// msText is a duration the API gives in milliseconds.
func msText(ms float64) string {
	return durationText(time.Duration(ms * float64(time.Millisecond)))
}

func printVersion(w io.Writer, m map[string]any) {
	fmt.Fprintf(w, "ovm:    %s\n", version)
	fmt.Fprintf(w, "agent:  %v (protocol %v, %v, %v/%v)\n", m["version"], m["protocol"], m["go"], m["os"], m["arch"])
}

func printHostInfo(w io.Writer, m map[string]any) {
	kvm := "no"
	if b, _ := m["kvm_usable"].(bool); b {
		kvm = "yes"
	}
	flags, _ := m["cpu_flags"].([]any)
	rows := [][2]string{
		{"host", fmt.Sprint(m["hostname"])},
		{"cpus", fmt.Sprintf("%v x %v (%v, %.0f MHz)", m["cpu_count"], m["cpu_model"], m["cpu_vendor"], m["cpu_mhz"])},
		{"cpu flags", fmt.Sprintf("%d flags", len(flags))},
		{"memory", fmt.Sprintf("%s total, %s free, %s available", formatScalar("memory_total", m["memory_total"]), formatScalar("memory_free", m["memory_free"]), formatScalar("memory_available", m["memory_available"]))},
		{"kernel", fmt.Sprintf("%v %v (%v)", m["kernel"], m["machine"], m["kernel_version"])},
		{"kvm", fmt.Sprintf("%s: %v", kvm, m["kvm_detail"])},
		{"agent", fmt.Sprintf("%v, protocol %v, up %s", m["agent_version"], m["agent_protocol"], formatScalar("agent_uptime_seconds", m["agent_uptime_seconds"]))},
	}
	if q, ok := m["qemu"].(map[string]any); ok {
		rows = append(rows, qemuRows(q)...)
	}
	if p, ok := m["pool"].(map[string]any); ok {
		rows = append(rows, poolRow(p))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-10s %s\n", r[0]+":", r[1])
	}
}

// poolRow is host-info's line on the server pool: its name, the member
// name, the state, and the lease or why there is none.
func poolRow(p map[string]any) [2]string {
	s := fmt.Sprintf("%v as %v, %v since %v", p["name"], p["member"], p["state"], p["since"])
	if l, ok := p["lease"].(string); ok && l != "" {
		s += fmt.Sprintf(", lease %s holds %s of %s", l, secondsText(num(p["lease_deadline_in_seconds"])), secondsText(num(p["lease_ttl_seconds"])))
	}
	if ms, ok := p["master"].(string); ok && ms != "" {
		s += ", master " + ms
	}
	if e, ok := p["error"].(string); ok && e != "" {
		s += ": " + e
	}
	return [2]string{"pool", s}
}

// qemuRows are host-info's lines on QEMU: the binary and its version, or
// why qemu domains cannot start; the accelerator and why.
func qemuRows(q map[string]any) [][2]string {
	ver := fmt.Sprint(orDash(q["version"]))
	if ok, _ := q["usable"].(bool); !ok {
		ver = fmt.Sprintf("%s, unusable: %v", ver, q["problem"])
	}
	return [][2]string{
		{"qemu", fmt.Sprintf("%v (%s)", q["binary"], ver)},
		{"accel", fmt.Sprintf("%v: %v", orDash(q["accel"]), q["accel_reason"])},
	}
}
