package qemuhost

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Limits of ParseMachines and ListMachines: what `-machine help` of a
// QEMU says is some 3 KiB and 60 lines.
const (
	MaxMachinesOutput = 256 << 10
	MaxMachines       = 2048
	MaxMachineName    = 64
)

// ListMachines runs binary -machine help and returns the machine types it
// lists (see ParseMachines).
func ListMachines(ctx context.Context, binary string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-machine", "help")
	out := &capped{max: MaxMachinesOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -machine help: %w: %s", binary, err, quote(out.Bytes()))
	}
	if out.dropped {
		return nil, fmt.Errorf("%s -machine help: said more than %d bytes, not a QEMU", binary, MaxMachinesOutput)
	}
	ms, err := ParseMachines(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s -machine help: %w", binary, err)
	}
	return ms, nil
}

// ParseMachines reads what `qemu-system-x86_64 -machine help` prints:
//
//	Supported machines are:
//	pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
//	pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
//
// and returns every machine type named, aliases and their targets
// included, in order, each once. Output over MaxMachinesOutput, more than
// MaxMachines types or a name that is not one ([A-Za-z0-9._-], at most
// MaxMachineName bytes) is an error.
func ParseMachines(out []byte) ([]string, error) {
	if len(out) > MaxMachinesOutput {
		return nil, fmt.Errorf("%d bytes of machine list, more than %d", len(out), MaxMachinesOutput)
	}
	lines := bytes.Split(out, []byte("\n"))
	if len(lines) == 0 || !bytes.HasPrefix(bytes.TrimSpace(lines[0]), []byte("Supported machines are")) {
		return nil, fmt.Errorf("not a machine list: %s", quote(lines[0]))
	}
	var names []string
	seen := map[string]bool{}
	add := func(n string) error {
		if !machineName(n) {
			return fmt.Errorf("machine list names %s, which is not a machine type", strconv.Quote(cut(n)))
		}
		if !seen[n] {
			if len(names) == MaxMachines {
				return fmt.Errorf("more than %d machine types", MaxMachines)
			}
			seen[n] = true
			names = append(names, n)
		}
		return nil
	}
	for _, l := range lines[1:] {
		fields := strings.Fields(string(l))
		if len(fields) == 0 {
			continue
		}
		if err := add(fields[0]); err != nil {
			return nil, err
		}
		if _, alias, ok := strings.Cut(string(l), "(alias of "); ok {
			target, _, _ := strings.Cut(alias, ")")
			if err := add(strings.TrimSpace(target)); err != nil {
				return nil, err
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("the machine list names no machine type")
	}
	return names, nil
}

func machineName(s string) bool {
	if s == "" || len(s) > MaxMachineName {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// capped keeps the first max bytes written to it.
type capped struct {
	bytes.Buffer
	max     int
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.Len(); len(p) > room {
		c.dropped = true
		p = p[:max(room, 0)]
	}
	c.Buffer.Write(p)
	return n, nil
}

func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func quote(b []byte) string { return strconv.Quote(cut(strings.TrimSpace(string(b)))) }
