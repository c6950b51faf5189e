// Package client calls an ovs-agent's XML-RPC API over HTTP(S) or the local
// unix socket, using github.com/kolo/xmlrpc for the encoding. Unlike
// kolo's net/rpc-based Client it keeps fault codes and HTTP status codes,
// so that `ovm` can give exit codes and messages a person can act on.
package client
