// Package sshtest runs an ssh server for tests: the stand-in for a
// CloudStack system VM's sshd (the agent's exec_domr and
// ovs_domr_upload_file reach it), with one authorized key, running each
// command with /bin/sh on the test's own host. It imports nothing of the
// project.
package sshtest
