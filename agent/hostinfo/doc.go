// Package hostinfo reads what the API's host.info and host.stats report
// about this machine: host name, CPUs (count, model, vendor, flags),
// memory, kernel, whether KVM is usable, load and CPU use. It reads /proc
// and calls uname; it changes nothing.
package hostinfo
