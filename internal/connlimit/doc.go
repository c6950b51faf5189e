// Package connlimit counts the connections of a listener that have not yet
// authenticated, per listener and per peer address, and says when a cap is
// reached, with a rate-limited log line. The API listeners (agent) and the
// relocation listeners (relocation) each keep one.
//
// It owns only the counting and that log line: it does not accept, read or
// close connections, and knows nothing of passwords or protocols.
package connlimit
