package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sizes are binary (KiB, MiB, GiB) with one decimal, none when whole.
func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 128 << 20: "128 MiB",
		3<<30 + 1<<29: "3.5 GiB", 5 << 40: "5 TiB", -2048: "-2 KiB",
	} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
	if got := mibText(1536); got != "1.5 GiB" {
		t.Errorf("mibText(1536) = %q", got)
	}
	if got, none := rateText(32<<20), rateText(0); got != "32 MiB/s" || none != "-" {
		t.Errorf("rateText: %q, %q", got, none)
	}
}

// Durations: ms below a second, s below a minute, then h/m/s; never Go's
// 1h2m3.456789s.
func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		400 * time.Microsecond: "0.4 ms", 12500 * time.Microsecond: "12.5 ms", 300 * time.Millisecond: "300 ms",
		1250 * time.Millisecond: "1.25 s", 245 * time.Second: "4m05s", 2*time.Hour + 3*time.Minute + 4*time.Second + 456*time.Millisecond: "2h03m04s",
		76*time.Hour + 5*time.Minute: "3d04h05m", 0: "0 ms",
	} {
		if got := durationText(d); got != want {
			t.Errorf("durationText(%v) = %q, want %q", d, got, want)
		}
	}
	if secondsText(1.5) != "1.50 s" || msText(12.5) != "12.5 ms" {
		t.Errorf("secondsText(1.5) = %q, msText(12.5) = %q", secondsText(1.5), msText(12.5))
	}
}

// A struct's members are printed in the unit their name says.
func TestFormatScalarUnits(t *testing.T) {
	for _, c := range []struct {
		key  string
		v    any
		want string
	}{
		{"memory", int64(128), "128 MiB"}, {"maxmem", int64(2048), "2 GiB"}, {"free_memory_mib", int64(512), "512 MiB"},
		{"memory_total", int64(8 << 30), "8 GiB"}, {"bytes_sent", int64(64 << 20), "64 MiB"}, {"resident_bytes", 1024.0, "1 KiB"},
		{"size", int64(100 << 30), "100 GiB"}, {"throughput", float64(32 << 20), "32 MiB/s"},
		{"downtime_ms", 12.5, "12.5 ms"}, {"uptime_seconds", 3725.0, "1h02m05s"}, {"cpu_time_seconds", 12.5, "12.50 s"},
		{"round", int64(3), "3"}, {"load1", 0.5, "0.50"},
	} {
		if got := formatScalar(c.key, c.v); got != c.want {
			t.Errorf("formatScalar(%q, %v) = %q, want %q", c.key, c.v, got, c.want)
		}
	}
}

// No command formats a size or a duration itself: the format strings in
// cmd/ovm have no %f followed by s or ms, no decimal MB/KB/GB, no %d MiB
// (the helpers above say them), except print.go's helpers and the
// migrate -r flag, which is MB/s as xm migrate -r.
func TestNoStrayUnits(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	stray := regexp.MustCompile(`%[-0-9.]*[fdv] ?(s|ms|MiB|GiB|KiB)\b|\b[KMG]B\b|%[-0-9.]*[fdv]s\b`)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "print.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			s = strings.ReplaceAll(s, "MB/s, 1 MB = 1,000,000 bytes", "")
			s = strings.ReplaceAll(s, "[-r MB]", "")
			if m := stray.FindString(s); m != "" {
				t.Errorf("%s: %q formats a unit itself (%q): use sizeText, rateText, durationText", fset.Position(lit.Pos()), s, m)
			}
			return true
		})
	}
}
