package relocation

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestCheckerOrdersAndSkips(t *testing.T) {
	var c Checker
	c.Soft("version", "protocol %d here", 2)
	c.Hard("name", "a domain named %s exists here already", "vm1")
	c.Soft("space", "too little")
	c.Hard("folder", "exists")
	got := Strings(c.Ordered())
	want := []string{"name: a domain named vm1 exists here already", "folder: exists", "version: protocol 2 here", "space: too little"}
	if len(got) != len(want) {
		t.Fatalf("ordered %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ordered %q, want %q", got, want)
		}
	}
	if skipped := c.Skip(); len(skipped) != 2 || skipped[0].Field != "version" || len(c.Problems()) != 2 || !c.HasHard() {
		t.Fatalf("skip dropped %v, kept %v", skipped, c.Problems())
	}
}

// TestWelcomeProblemsBothWays: a Welcome carries its problems as the
// strings an older peer reads and structured; from an older peer, the
// strings are read back into problems that print the same.
func TestWelcomeProblemsBothWays(t *testing.T) {
	var c Checker
	c.Hard("disk xvda (/OVS/r1/a.img)", "missing")
	c.Soft("", "domain vm1 has no disk on a repository: name the repository")
	w := &Welcome{}
	w.SetProblems(c.Problems())
	var buf bytes.Buffer
	if err := WriteWelcome(&buf, w); err != nil {
		t.Fatal(err)
	}
	var old struct {
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal(buf.Bytes()[4:], &old); err != nil {
		t.Fatal(err)
	}
	if len(old.Problems) != 2 || old.Problems[0] != "disk xvda (/OVS/r1/a.img): missing" {
		t.Fatalf("an older peer reads %q", old.Problems)
	}
	var back Welcome
	if err := readMsg(&buf, &back); err != nil {
		t.Fatal(err)
	}
	if ps := back.ProblemList(); len(ps) != 2 || !ps[0].Hard || ps[1].Hard {
		t.Fatalf("structured problems came back as %+v", ps)
	}
	fromOld := (&Welcome{Problems: old.Problems}).ProblemList()
	for i, p := range fromOld {
		if p.String() != old.Problems[i] || p.Hard {
			t.Fatalf("problem %q from an older peer reads back as %+v", old.Problems[i], p)
		}
	}
	if fromOld[0].Field != "disk xvda (/OVS/r1/a.img)" {
		t.Fatalf("field of an older peer's problem: %q", fromOld[0].Field)
	}
}
