package config

import (
	"strconv"
	"strings"
)

// RunDirChanges are the edits that turn agent.ini.example into the
// agent.ini of a development agent run out of dir (`ovs-agent serve
// --run-dir`): the values of DefaultForDir(dir), except that the log goes
// to the terminal, and passwordHash as [auth] password_hash.
func RunDirChanges(dir, passwordHash string) []Change {
	d := DefaultForDir(dir)
	return []Change{
		{Section: "server", Key: "listen_address", Value: d.Server.ListenAddress},
		{Section: "server", Key: "port", Value: strconv.Itoa(d.Server.Port)},
		{Section: "server", Key: "ssl", Value: "no"},
		{Section: "server", Key: "unix_socket", Value: d.Server.UnixSocket},
		{Section: "auth", Key: "password_hash", Value: passwordHash},
		{Section: "log", Key: "file", Value: ""}, // logs on the terminal
		{Section: "agent", Key: "state_dir", Value: d.Agent.StateDir},
		{Section: "agent", Key: "file_dirs", Value: strings.Join(d.Agent.FileDirs, " ")},
		{Section: "agent", Key: "secondary_storage_dir", Value: d.Agent.SecondaryStorageDir},
		{Section: "relocation", Key: "address", Value: d.Relocation.Address},
		{Section: "repository", Key: "root", Value: d.Repository.Root},
		{Section: "repository", Key: "repositories_file", Value: d.Repository.RepositoriesFile},
		{Section: "repository", Key: "options_file", Value: d.Repository.OptionsFile},
		{Section: "repository", Key: "staging_dir", Value: d.Repository.StagingDir},
		{Section: "repository", Key: "state_file", Value: d.Repository.StateFile},
	}
}
