package main

import (
	"fmt"
	"io"
)

// printEstimate prints migration.check's estimate, or why there is none.
func printEstimate(out io.Writer, e map[string]any, why string) {
	if e == nil {
		if why != "" {
			fmt.Fprintln(out, why)
		}
		return
	}
	kind := "non-live"
	if e["live"] == true {
		kind = "live"
	}
	fmt.Fprintf(out, "estimate (%s, measured for %s):\n", kind, secondsText(num(e["measured_seconds"])))
	hot := ""
	if h := int64(num(e["hot_bytes"])); h > 0 && h < int64(num(e["memory_bytes"])) {
		hot = " over a hot set of about " + sizeText(h)
	}
	dirty := "dirties nothing"
	if d := num(e["dirty_rate"]); d > 0 {
		dirty = "dirties " + rateText(d) + hot
	}
	fmt.Fprintf(out, "  guest: %s; %s of %s memory touched\n", dirty,
		sizeText(int64(num(e["touched_bytes"]))), sizeText(int64(num(e["memory_bytes"]))))
	capped := ""
	if e["rate_limited"] == true {
		capped = fmt.Sprintf(", capped at %s by the rate option", rateText(num(e["bandwidth"])))
	}
	landed := ""
	if m := num(e["target_memory_rate"]); m > 0 {
		landed = fmt.Sprintf(" into its memory (its memory writes alone: %s)", rateText(m))
	}
	fmt.Fprintf(out, "  link: %s to the target%s%s\n", rateText(num(e["link_throughput"])), landed, capped)
	fmt.Fprintf(out, "  predicted: %s total, %s downtime (target %s), %d rounds, %s to send (%v)\n",
		secondsText(num(e["total_seconds"])), msText(num(e["downtime_ms"])), msText(num(e["max_downtime_ms"])), int64(num(e["rounds"])),
		sizeText(int64(num(e["bytes_to_send"]))), e["stop_reason"])
	if e["auto_converge"] == true {
		fmt.Fprintf(out, "  auto-converge: needed; the guest would be throttled up to %d%% for %s\n",
			int64(num(e["max_throttle_percent"])), secondsText(num(e["throttled_seconds"])))
	} else {
		fmt.Fprintln(out, "  auto-converge: not needed")
	}
}
