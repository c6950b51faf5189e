// Package connlimittest holds what the tests of the pending-connection
// caps share (the API listener's in agent, the relocation listener's in
// relocation): whether the server closed a connection, and a bounded wait
// for the count of connections holding a place. It is for tests only (only
// _test.go files import it): it dials nothing, starts no server, and
// imports nothing of the project but internal/connlimit.
package connlimittest
