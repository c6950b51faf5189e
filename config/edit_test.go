package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const editINI = `; site agent.ini
[server]
; the API port, agreed with the manager team
port = 8899   ; do not change lightly

[access]
allow = *
deny =
`

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to umask
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEditFileKeepsLayout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.ini")
	writeFile(t, path, editINI, 0o640)
	c, err := EditFile(path, []Change{
		{"server", "port", "9000"},
		{"Access", "Allow", "10.1.1.*, *.example.com"},
		{"access", "deny", "10.1.1.13"},
		{"log", "level", "debug"},
		{"auth", "user", "ops"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `; site agent.ini
[server]
; the API port, agreed with the manager team
port = 9000   ; do not change lightly

[access]
allow = 10.1.1.*, *.example.com
deny = 10.1.1.13

[log]
level = debug

[auth]
user = ops
`
	if got := read(t, path); got != want {
		t.Errorf("file is\n%s\nwant\n%s", got, want)
	}
	if c.Server.Port != 9000 || c.Log.Level != "debug" || c.Where("server", "port") != path+":4" {
		t.Errorf("returned config: port %d level %s from %s", c.Server.Port, c.Log.Level, c.Where("server", "port"))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".agent.ini.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestEditFileRefusesInvalid(t *testing.T) {
	tests := []struct {
		name    string
		changes []Change
		want    string
	}{
		{"bad value", []Change{{"server", "port", "88x"}}, `agent.ini:4: [server] port: "88x" is not a port number (1-65535)`},
		{"unknown option", []Change{{"server", "prot", "1"}}, "[server] prot: unknown option (did you mean port?)"},
		{"unknown section", []Change{{"srever", "port", "1"}}, "[srever] port: unknown option in [srever] (it belongs in [server] or [relocation])"},
		{"unwritable value", []Change{{"log", "file", "/var/log/a ;b"}}, "would read back as"},
		{"newline", []Change{{"auth", "user", "a\n[x]"}}, "line break"},
		{"cross-option rule", []Change{{"server", "ssl_cert", "/etc/c.pem"}}, "[server] ssl_cert: set without ssl_key"},
		{"second change bad", []Change{{"server", "port", "9000"}, {"access", "allow", "10.1.1.300"}}, `item "10.1.1.300"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.ini")
			writeFile(t, path, editINI, 0o600)
			c, err := EditFile(path, tt.changes)
			if err == nil {
				t.Fatalf("EditFile succeeded: %+v", exported(c))
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q\nwant it to name %s and say %q", err, path, tt.want)
			}
			if got := read(t, path); got != editINI {
				t.Errorf("file changed:\n%s", got)
			}
		})
	}
}

func TestEditFileRefusesBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.ini")
	broken := "[server]\nport: 1\n"
	writeFile(t, path, broken, 0o600)
	_, err := EditFile(path, []Change{{"server", "port", "2"}})
	if err == nil || !strings.Contains(err.Error(), path+`:2: expected "[section]"`) {
		t.Errorf("err = %v", err)
	}
	if read(t, path) != broken {
		t.Error("broken file rewritten")
	}
	// A file that parses but has an invalid value can be repaired.
	writeFile(t, path, "[server]\nport = 88x\n", 0o600)
	c, err := EditFile(path, []Change{{"server", "port", "8899"}})
	if err != nil || c.Server.Port != 8899 {
		t.Errorf("repair: %v", err)
	}
}

func TestEditFileCreatesFromExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.ini")
	c, err := EditFile(path, []Change{{"access", "allow", "10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	data := read(t, path)
	if !strings.Contains(data, "\nallow = 10.0.0.0/8\n") || !strings.HasPrefix(data, "; ovs-agent configuration") {
		t.Errorf("new file does not look like the example:\n%s", data)
	}
	if got := strings.Replace(data, "allow = 10.0.0.0/8", "allow = *", 1); got != string(ExampleINI) {
		t.Error("new file differs from the example by more than the change")
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != NewFileMode {
		t.Errorf("mode %v, want %v", fi.Mode().Perm(), NewFileMode)
	}
	if len(c.Access.Allow) != 1 || c.Access.Allow[0] != "10.0.0.0/8" {
		t.Errorf("allow = %q", c.Access.Allow)
	}
	if _, err := EditFile(filepath.Join(t.TempDir(), "no", "dir", "agent.ini"), nil); err == nil {
		t.Error("file in a missing directory created")
	}
}

func TestEditFileFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.ini")
	link := filepath.Join(dir, "agent.ini")
	writeFile(t, real, editINI, 0o600)
	if err := os.Symlink("real.ini", link); err != nil {
		t.Fatal(err)
	}
	if _, err := EditFile(link, []Change{{"server", "port", "9001"}}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v %v", fi.Mode(), err)
	}
	if !strings.Contains(read(t, real), "port = 9001") {
		t.Error("target not edited")
	}
	dangling := filepath.Join(dir, "dangling.ini")
	if err := os.Symlink("missing.ini", dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := EditFile(dangling, nil); err == nil {
		t.Error("dangling symlink edited")
	}
}

func TestEditFileNoChangeNoWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.ini")
	writeFile(t, path, editINI, 0o600)
	before, _ := os.Stat(path)
	ino := before.Sys().(*syscall.Stat_t).Ino
	if _, err := EditFile(path, []Change{{"server", "port", "8899"}}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if after.Sys().(*syscall.Stat_t).Ino != ino {
		t.Error("file rewritten although nothing changed")
	}
	if _, err := EditFile(path, []Change{{"server", "port", "8898"}}); err != nil {
		t.Fatal(err)
	}
	after, _ = os.Stat(path)
	if after.Sys().(*syscall.Stat_t).Ino == ino {
		t.Error("file not replaced by rename")
	}
}

func TestEditFileKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	path := filepath.Join(t.TempDir(), "agent.ini")
	writeFile(t, path, editINI, 0o640)
	if err := os.Chown(path, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if _, err := EditFile(path, []Change{{"server", "port", "9000"}}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 5678 || fi.Mode().Perm() != 0o640 {
		t.Errorf("owner %d:%d mode %v, want 1234:5678 0640", st.Uid, st.Gid, fi.Mode().Perm())
	}
}

func TestEditFileReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := EditFile(dir, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	// A read-only directory: the temporary file cannot be created, and the
	// error says so without touching the file.
	if os.Geteuid() == 0 {
		return // root writes anyway
	}
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o755)
	path := filepath.Join(ro, "agent.ini")
	writeFile(t, path, editINI, 0o600)
	os.Chmod(ro, 0o555)
	defer os.Chmod(ro, 0o755)
	if _, err := EditFile(path, []Change{{"server", "port", "1"}}); err == nil || !errors.Is(err, os.ErrPermission) {
		t.Errorf("read-only dir: %v", err)
	}
}
