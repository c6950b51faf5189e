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

func formatScalar(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case time.Time:
		return x.Format(time.RFC3339)
	case int64:
		switch {
		case key == "memory" || key == "maxmem":
			return fmt.Sprintf("%d MiB", x)
		case isBytes(key):
			return humanBytes(x)
		}
		return fmt.Sprint(x)
	case float64:
		switch {
		case key == "cpu_time_seconds":
			return fmt.Sprintf("%.2fs", x)
		case strings.HasSuffix(key, "_seconds"):
			return (time.Duration(x * float64(time.Second))).Round(time.Second).String()
		case key == "dirty_rate":
			return rate(x)
		}
		return fmt.Sprintf("%.2f", x)
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

func isBytes(key string) bool {
	return strings.HasPrefix(key, "memory_") || strings.HasPrefix(key, "swap_") || strings.HasSuffix(key, "_bytes")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
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
		s += fmt.Sprintf(", lease %s holds %.1fs of %vs", l, p["lease_deadline_in_seconds"], p["lease_ttl_seconds"])
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
