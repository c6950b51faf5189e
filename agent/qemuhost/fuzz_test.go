package qemuhost

import (
	"testing"
)

// FuzzParseMachines: whatever a program prints, ParseMachines returns an
// error or at most MaxMachines valid, distinct names.
func FuzzParseMachines(f *testing.F) {
	f.Add([]byte(machineHelp))
	f.Add([]byte("Supported machines are:\npc (alias of (alias of x))\n"))
	f.Add([]byte("Supported machines are:\n\n\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		ms, err := ParseMachines(out)
		if err != nil {
			return
		}
		if len(ms) == 0 || len(ms) > MaxMachines {
			t.Fatalf("%d machine types", len(ms))
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if !machineName(m) || seen[m] {
				t.Fatalf("bad or repeated machine type %q", m)
			}
			seen[m] = true
		}
	})
}
