// Package test holds the end-to-end tests: they build the real binaries,
// start agents on loopback addresses (127.0.0.1, 127.0.0.2, ...) and drive
// them the way operators and manager software do, with Python's
// xmlrpc.client and with github.com/kolo/xmlrpc. Benchmarks that span
// processes live here too.
package test
