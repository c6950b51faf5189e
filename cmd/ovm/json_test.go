package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// invocation is one way to run an ovm command against the fake agent.
type invocation struct {
	args  []string
	lines bool // a refreshing or following command: JSON lines
}

// invocations run every ovm command that prints; a command that is not
// here fails TestEveryCommandIsInvoked.
func invocations(t *testing.T) map[string]invocation {
	cfg := filepath.Join(t.TempDir(), "web1.cfg")
	if err := os.WriteFile(cfg, []byte("name = 'web1'\nmemory = 1024\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]invocation{
		"ovm version":                {args: []string{"version"}},
		"ovm host-info":              {args: []string{"host-info"}},
		"ovm host-stats":             {args: []string{"host-stats"}},
		"ovm status":                 {args: []string{"status"}},
		"ovm call":                   {args: []string{"call", "agent.echo", "42", "x"}},
		"ovm create":                 {args: []string{"create", cfg}},
		"ovm list":                   {args: []string{"list"}},
		"ovm info":                   {args: []string{"info", "web1"}},
		"ovm delete":                 {args: []string{"delete", "web1"}},
		"ovm save":                   {args: []string{"save", "web1", "/tmp/web1.save"}},
		"ovm restore":                {args: []string{"restore", "/tmp/web1.save"}},
		"ovm start":                  {args: []string{"start", "web1"}},
		"ovm destroy":                {args: []string{"destroy", "web1"}},
		"ovm pause":                  {args: []string{"pause", "web1"}},
		"ovm unpause":                {args: []string{"unpause", "web1"}},
		"ovm shutdown":               {args: []string{"shutdown", "-t", "5", "web1"}},
		"ovm reboot":                 {args: []string{"reboot", "web1"}},
		"ovm console":                {args: []string{"console", "-f", "web1"}, lines: true},
		"ovm top":                    {args: []string{"top", "-n", "2", "-d", "1ms"}, lines: true},
		"ovm mem-set":                {args: []string{"mem-set", "web1", "1536"}},
		"ovm migrate":                {args: []string{"migrate", "-l", "web1", "server2"}},
		"ovm migrate-status":         {args: []string{"migrate-status"}},
		"ovm migrate-cancel":         {args: []string{"migrate-cancel", "m-1"}},
		"ovm detach":                 {args: []string{"detach", "web1"}},
		"ovm attach":                 {args: []string{"attach", "/OVS/running_pool/web1"}},
		"ovm repo list":              {args: []string{"repo", "list"}},
		"ovm repo reload":            {args: []string{"repo", "reload"}},
		"ovm repo status":            {args: []string{"repo", "status", "0004fb0000030000"}},
		"ovm repo add":               {args: []string{"repo", "add", "--options", "vers=4", "nfs1:/export/repo1"}},
		"ovm repo remove":            {args: []string{"repo", "remove", "0004fb0000030000"}},
		"ovm repo secondary":         {args: []string{"repo", "secondary"}},
		"ovm repo secondary-unmount": {args: []string{"repo", "secondary-unmount", "6a5c8e3d-9f1b-3c2a-8e7d-1b2c3d4e5f60"}},
		"ovm template":               {args: []string{"template", "list", "0004fb0000030000"}},
		"ovm iso":                    {args: []string{"iso", "list", "0004fb0000030000"}},
		"ovm pool info":              {args: []string{"pool", "info"}},
		"ovm pool domains":           {args: []string{"pool", "domains"}},
		"ovm pool create":            {args: []string{"pool", "create", "--ha", cfg}},
		"ovm pool start":             {args: []string{"pool", "start", "web1"}},
		"ovm pool stop":              {args: []string{"pool", "stop", "web1"}},
		"ovm pool delete":            {args: []string{"pool", "delete", "web1"}},
		"ovm pool maintenance":       {args: []string{"pool", "maintenance", "server2", "on"}},
		"ovm pool adopt":             {args: []string{"pool", "adopt", "--ha", "web1"}},
		"ovm pool ha":                {args: []string{"pool", "ha", "web1", "off"}},
		"ovm migrate -n (dry run)":   {args: []string{"migrate", "-n", "-l", "web1", "server2"}},
		"ovm migrate --detach":       {args: []string{"migrate", "--detach", "web1", "server2"}},
		"ovm migrate-status ID":      {args: []string{"migrate-status", "m-1"}},
		"ovm create --from-template": {args: []string{"create", "--from-template", "tmpl1", "--repo", "0004fb0000030000", "web2"}},
	}
}

// runnable lists the commands under root that do something (not the
// groups, repo and pool, which only list their subcommands).
func runnable(root *cobra.Command) []string {
	var list []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() {
			list = append(list, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	sort.Strings(list)
	return list
}

// Every command that prints is run by the JSON and the text test below.
func TestEveryCommandIsInvoked(t *testing.T) {
	inv := invocations(t)
	root := newRoot(&globals{}, nil, io.Discard, io.Discard)
	for _, path := range runnable(root) {
		c, _, _ := root.Find(strings.Fields(path)[1:])
		if textOnly(c) != "" {
			continue // TestTextOnlyRefusesJSON
		}
		if _, ok := inv[path]; !ok {
			t.Errorf("%s: no invocation in the JSON test (invocations)", path)
		}
	}
}

// A command that writes no data (cobra's completion, or one annotated
// text-only) refuses -o json with a usage error that says why; without
// -o json it runs.
func TestTextOnlyRefusesJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-o", "json", "completion", "bash"}, strings.NewReader(""), &out, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), "shell completion script") || out.Len() != 0 {
		t.Errorf("-o json completion bash: exit %d, stdout %d bytes, stderr %q", code, out.Len(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"completion", "bash"}, strings.NewReader(""), &out, io.Discard); code != 0 || !strings.Contains(out.String(), "bash completion") {
		t.Errorf("completion bash: exit %d, %.80q", code, out.String())
	}
	c := &cobra.Command{Use: "man", Annotations: map[string]string{textOnlyKey: "it writes manual pages"}}
	hidden := &cobra.Command{Use: "gen-x", Hidden: true}
	(&cobra.Command{Use: "ovm"}).AddCommand(c, hidden)
	if textOnly(c) != "it writes manual pages" || !strings.Contains(textOnly(hidden), "hidden") {
		t.Errorf("annotated: %q, hidden: %q", textOnly(c), textOnly(hidden))
	}
	// A hidden command, as one added to ovm, refuses -o json.
	root := newRoot(&globals{}, strings.NewReader(""), io.Discard, &errOut)
	root.AddCommand(&cobra.Command{Use: "gen-x", Hidden: true, RunE: func(*cobra.Command, []string) error { return nil }})
	root.SetArgs([]string{"-o", "json", "gen-x"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "no -o json") {
		t.Errorf("-o json gen-x: %v", err)
	}
}

// With -o json every command prints one JSON document on standard output
// and nothing else (top and console: one document per line), and exits 0.
func TestEveryCommandPrintsJSON(t *testing.T) {
	for name, inv := range invocations(t) {
		t.Run(name, func(t *testing.T) {
			f := newFakeAgent(t)
			out, errOut, code := f.ovm(t, nil, append([]string{"-o", "json"}, inv.args...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if inv.lines {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				for _, l := range lines {
					var v map[string]any
					if err := json.Unmarshal([]byte(l), &v); err != nil {
						t.Fatalf("line %q is not a JSON object: %v\n%s", l, err, out)
					}
				}
				if len(lines) < 2 {
					t.Fatalf("%d JSON lines, want one per refresh or read (2 here):\n%s", len(lines), out)
				}
				return
			}
			dec := json.NewDecoder(strings.NewReader(out))
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if dec.More() {
				t.Fatalf("more than one JSON document:\n%s", out)
			}
			switch v.(type) {
			case map[string]any, []any:
			default:
				t.Fatalf("the document is %T, want an object or a list:\n%s", v, out)
			}
		})
	}
}

// The JSON documents carry the API's answer, and ovm's own where it adds
// one (version) or there is none (delete, pool maintenance, migrate).
func TestJSONDocuments(t *testing.T) {
	f := newFakeAgent(t)
	doc := func(args ...string) map[string]any {
		t.Helper()
		out, errOut, code := f.ovm(t, nil, append([]string{"-o", "json"}, args...)...)
		var m map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("ovm -o json %v: exit %d, %q %q", args, code, out, errOut)
		}
		return m
	}
	if v := doc("version"); v["ovm"] != version || v["agent"].(map[string]any)["version"] != "1.2.3" {
		t.Errorf("version: %v", v)
	}
	if v := doc("info", "web1"); v["name"] != "web1" || v["memory"] != 1024.0 || v["uptime_seconds"] != 3725.0 {
		t.Errorf("info: %v (want the API's figures, not formatted)", v)
	}
	if v := doc("delete", "web1"); v["name"] != "web1" || v["deleted"] != true {
		t.Errorf("delete: %v", v)
	}
	if v := doc("pool", "maintenance", "server2", "off"); v["host"] != "server2" || v["maintenance"] != false {
		t.Errorf("pool maintenance: %v", v)
	}
	if v := doc("migrate", "--detach", "web1", "server2"); v["id"] != "m-1" {
		t.Errorf("migrate --detach: %v", v)
	}
	f.setMigration(f.migration...)
	if v := doc("migrate", "-l", "web1", "server2"); v["phase"] != "completed" || v["bytes_sent"] != float64(128<<20) {
		t.Errorf("migrate: %v, want the last migration.status", v)
	}
}

// A migration that fails prints its last status and exits 1, the error
// on standard error as a JSON line.
func TestJSONMigrationFailure(t *testing.T) {
	f := newFakeAgent(t)
	failed := migrationStatus("failed", 10<<20, 100<<20)
	failed["error"] = "target refused the domain"
	f.setMigration(migrationStatus("copying", 1<<20, 100<<20), failed)
	out, errOut, code := f.ovm(t, nil, "-o", "json", "migrate", "-l", "web1", "server2")
	var st map[string]any
	if code != exitFault || json.Unmarshal([]byte(out), &st) != nil || st["phase"] != "failed" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	e := jsonError(t, errOut)
	if e["kind"] != "fault" || e["exit_code"] != 1.0 || !strings.Contains(e["message"].(string), "target refused the domain") {
		t.Errorf("error %v", e)
	}
}

// jsonError decodes the one JSON line ovm -o json prints on standard
// error when a command fails.
func jsonError(t *testing.T, errOut string) map[string]any {
	t.Helper()
	if strings.Count(errOut, "\n") != 1 {
		t.Fatalf("stderr %q: want one line", errOut)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(errOut), &e); err != nil || e.Error == nil {
		t.Fatalf("stderr %q is not a JSON error: %v", errOut, err)
	}
	return e.Error
}

// Faults keep their exit codes with -o json; standard output stays empty
// and standard error has one JSON line saying what went wrong.
func TestJSONFaultsKeepExitCodes(t *testing.T) {
	f := newFakeAgent(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("wrong\n"), 0o600)
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		kind      string
		faultCode float64
		hint      bool
	}{
		{"fault", []string{"info", "nosuch"}, exitFault, "fault", 1002, false},
		{"usage", []string{"mem-set", "web1", "1G"}, exitUsage, "usage", 0, false},
		{"unknown flag", []string{"list", "--no-such-flag"}, exitUsage, "usage", 0, false},
		{"unknown command", []string{"no-such-command"}, exitUsage, "usage", 0, false},
		{"refused", []string{"--password-file", pw, "version"}, exitRefused, "refused", 0, true},
		{"unreachable", []string{"--url", "unix:///nonexistent/ovm-test.sock", "version"}, exitConn, "connection", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := f.ovm(t, nil, append([]string{"-o", "json"}, tc.args...)...)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d (want %d), stdout %q", code, tc.code, out)
			}
			e := jsonError(t, errOut)
			if e["kind"] != tc.kind || e["exit_code"] != float64(tc.code) || e["message"] == "" {
				t.Errorf("error %v, want kind %s, exit_code %d", e, tc.kind, tc.code)
			}
			if fc, _ := e["fault_code"].(float64); fc != tc.faultCode {
				t.Errorf("fault_code %v, want %v", e["fault_code"], tc.faultCode)
			}
			if _, has := e["hint"]; has != tc.hint {
				t.Errorf("hint %v, want one: %v", e["hint"], tc.hint)
			}
		})
	}
	// In text mode the same fault is the sentence it always was.
	_, errOut, code := f.ovm(t, nil, "info", "nosuch")
	if code != exitFault || errOut != "ovm: no domain named nosuch (fault 1002)\n" {
		t.Errorf("text mode: exit %d, %q", code, errOut)
	}
}

// Without -o json every command prints something for people: no JSON, no
// Go formatting mistakes (%!v), exit 0.
func TestEveryCommandPrintsText(t *testing.T) {
	for name, inv := range invocations(t) {
		t.Run(name, func(t *testing.T) {
			f := newFakeAgent(t)
			out, errOut, code := f.ovm(t, nil, inv.args...)
			if code != 0 || errOut != "" || strings.TrimSpace(out) == "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if strings.Contains(out, "%!") || strings.Contains(out, "<nil>") {
				t.Errorf("formatting mistake:\n%s", out)
			}
			if json.Valid(bytes.TrimSpace([]byte(out))) && name != "ovm call" {
				t.Errorf("text mode printed JSON:\n%s", out)
			}
		})
	}
}
