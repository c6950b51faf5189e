// Package tlscert is the agent's TLS identity: it loads the certificate
// pair the configuration names or, when none is named, keeps a self-signed
// pair of its own in a directory (generated once, reused at every start),
// and gives the certificate's SHA-256 fingerprint that clients pin.
//
// It knows nothing of the configuration or the listeners that serve the
// certificate; it writes only the two files of the pair it generates.
package tlscert
