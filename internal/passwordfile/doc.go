// Package passwordfile reads a password file: its first line, without the
// line end (an empty line is an empty password), refusing a file over
// MaxSize. ovm's --password-file and --target-password-file, ovs-agent
// configure's --password-file and the agent's [relocation]
// peer_password_file are read this way.
//
// It owns only that reading; it never logs or keeps the password, does not
// check it (agent/auth does) and imports of the project only
// internal/boundedfile. A pipe (--password-file <(pass show ovm)) is read
// like a file.
package passwordfile
