// Package manifest is the detach manifest of a domain: the file `ovm
// detach` writes into the domain's folder so that the domain can be moved
// by other means (a SAN, a copy) and attached on another host. It records
// the domain's configuration, its disks (each as a path relative to the
// root of the repository it is on, with its size and content digest) and
// what a host must offer to run it.
//
// It owns the file format, its parser (which treats every manifest as
// hostile: bounded size, strict fields, no path that escapes the
// repository root) and its writer. Checking a manifest against a host and
// the files is the agent's job.
package manifest
