package config

import (
	"path/filepath"
	"slices"
	"testing"
)

// The run directory's agent.ini, written from the example file, reads back
// as DefaultForDir with the log on the terminal and the given password.
func TestRunDirChanges(t *testing.T) {
	const hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	dir := t.TempDir()
	c, err := EditFile(filepath.Join(dir, "agent.ini"), RunDirChanges(dir, hash))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultForDir(dir)
	for _, x := range []struct{ what, got, want string }{
		{"listen_address", c.Server.ListenAddress, d.Server.ListenAddress},
		{"unix_socket", c.Server.UnixSocket, d.Server.UnixSocket},
		{"state_dir", c.Agent.StateDir, d.Agent.StateDir},
		{"relocation address", c.Relocation.Address, d.Relocation.Address},
		{"repository root", c.Repository.Root, d.Repository.Root},
		{"repositories_file", c.Repository.RepositoriesFile, d.Repository.RepositoriesFile},
		{"options_file", c.Repository.OptionsFile, d.Repository.OptionsFile},
		{"staging_dir", c.Repository.StagingDir, d.Repository.StagingDir},
		{"state_file", c.Repository.StateFile, d.Repository.StateFile},
		{"log file", c.Log.File, ""},
		{"password_hash", c.Auth.PasswordHash, hash},
	} {
		if x.got != x.want {
			t.Errorf("%s = %q, want %q", x.what, x.got, x.want)
		}
	}
	if c.Server.SSL || c.Server.Port != d.Server.Port || !slices.Equal(c.Agent.FileDirs, d.Agent.FileDirs) {
		t.Errorf("ssl %v port %d file_dirs %q; want no, %d, %q", c.Server.SSL, c.Server.Port, c.Agent.FileDirs, d.Server.Port, d.Agent.FileDirs)
	}
}
