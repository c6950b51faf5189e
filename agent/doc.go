// Package agent is the ovs-agent daemon: it serves the XML-RPC API on TCP
// (HTTPS by default) and on a local unix socket, applies the allow/deny
// address rules and the API password, writes one audit line per call, and
// integrates with the service manager (sd_notify readiness, reload on
// SIGHUP, watchdog, socket activation, graceful stop on SIGTERM).
//
// Later work adds the domain registry, the supervision of ovs-vmm
// processes, repositories and relocation; those live in their own packages
// and are wired here. The agent holds no guest memory. It may import
// config, vmm, repository and relocation; nothing imports it but cmd.
package agent
