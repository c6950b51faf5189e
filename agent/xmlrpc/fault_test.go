package xmlrpc

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
)

func TestFaultCodesStable(t *testing.T) {
	// These numbers are on the wire: changing one breaks clients.
	want := map[string]int{
		"ParseError": -32700, "InvalidRequest": -32600, "UnknownMethod": -32601, "BadParams": -32602,
		"Internal": -32603, "XendInternal": 1, "XendGeneric": 2, "XendInvalidDomain": 3,
		"AuthFailed": 1000, "AccessDenied": 1001, "NotFound": 1002, "BadState": 1003, "Exists": 1004,
		"NoResources": 1005, "Busy": 1006, "Unsupported": 1007, "Cancelled": 1008, "Timeout": 1009,
		"InvalidConfig": 1010, "Owned": 1011,
	}
	got := map[string]int{
		"ParseError": ParseError, "InvalidRequest": InvalidRequest, "UnknownMethod": UnknownMethod,
		"BadParams": BadParams, "Internal": Internal, "XendInternal": XendInternal, "XendGeneric": XendGeneric,
		"XendInvalidDomain": XendInvalidDomain, "AuthFailed": AuthFailed, "AccessDenied": AccessDenied,
		"NotFound": NotFound, "BadState": BadState, "Exists": Exists, "NoResources": NoResources, "Busy": Busy,
		"Unsupported": Unsupported, "Cancelled": Cancelled, "Timeout": Timeout, "InvalidConfig": InvalidConfig, "Owned": Owned,
	}
	for name, code := range want {
		if got[name] != code {
			t.Errorf("%s = %d, want %d", name, got[name], code)
		}
		if CodeName(code) != name {
			t.Errorf("CodeName(%d) = %q, want %q", code, CodeName(code), name)
		}
	}
	if AuthRequired != AuthFailed {
		t.Error("AuthRequired and AuthFailed differ")
	}
	if len(codeNames) != len(want) {
		t.Errorf("codeNames has %d entries, want %d", len(codeNames), len(want))
	}
	if CodeName(42) != "42" {
		t.Errorf("CodeName(42) = %q", CodeName(42))
	}
}

func TestAsFault(t *testing.T) {
	nf := Faultf(NotFound, "domain %s not found", "vm1")
	var nilFault *Fault
	tests := []struct {
		name string
		err  error
		want *Fault
	}{
		{"nil", nil, nil},
		{"fault itself", nf, nf},
		{"wrapped fault keeps code, gains context", fmt.Errorf("start vm1: %w", nf), &Fault{NotFound, "start vm1: domain vm1 not found"}},
		{"doubly wrapped", fmt.Errorf("api: %w", fmt.Errorf("start: %w", nf)), &Fault{NotFound, "api: start: domain vm1 not found"}},
		{"joined", errors.Join(errors.New("first"), nf), &Fault{NotFound, "first\ndomain vm1 not found"}},
		{"plain error", errors.New("mount /OVS: permission denied"), &Fault{Internal, "mount /OVS: permission denied"}},
		{"%v loses the code", fmt.Errorf("x: %v", nf), &Fault{Internal, "x: domain vm1 not found"}},
		{"typed nil fault", nilFault, &Fault{Internal, "internal error: nil *xmlrpc.Fault"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AsFault(tc.err)
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("AsFault = %v, want %v", got, tc.want)
			}
		})
	}
	if AsFault(nf) != nf {
		t.Error("AsFault(*Fault) is not the same pointer")
	}
}

func TestFaultStrings(t *testing.T) {
	f := Faultf(Busy, "domain %s is migrating", "vm1")
	if f.Error() != "domain vm1 is migrating" {
		t.Errorf("Error() = %q", f.Error())
	}
	if f.String() != "fault 1006 (Busy): domain vm1 is migrating" {
		t.Errorf("String() = %q", f.String())
	}
	var nf *Fault
	if nf.Error() == "" || nf.String() == "" {
		t.Error("nil *Fault formats as empty")
	}
}

// TestReadmeFaultTable keeps README.md's table and the const block equal.
func TestReadmeFaultTable(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (-?\d+) \| (\w+) \|`)
	rows := row.FindAllStringSubmatch(string(data), -1)
	seen := map[int]bool{}
	for _, r := range rows {
		code, _ := strconv.Atoi(r[1])
		if CodeName(code) != r[2] {
			t.Errorf("README.md lists %d as %s, the code says %s", code, r[2], CodeName(code))
		}
		seen[code] = true
	}
	for code, name := range codeNames {
		if !seen[code] {
			t.Errorf("README.md lacks %d %s", code, name)
		}
	}
}
