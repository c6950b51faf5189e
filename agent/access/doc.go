// Package access decides which network peers may talk to the agent's API:
// the allow/deny address rules of the Oracle VM Agent, "allowed if the
// address matches allow and not deny". Items are a single IP address, a
// wildcard range (10.1.1.*), a CIDR range (10.1.1.1/24), a host-name
// pattern (*.example.com, checked by forward-confirmed reverse lookup) or
// `*`.
//
// It owns rule parsing and matching only; it knows nothing of HTTP,
// passwords or configuration files.
package access
