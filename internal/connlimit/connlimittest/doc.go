// Package connlimittest holds what the tests of the pending-connection
// caps share (the API listener's in agent, the relocation listener's in
// relocation): whether the server closed a connection, and a bounded wait
// for the count of connections holding a place. It is for tests only: it
// dials nothing and starts no server.
package connlimittest
