// Package testnet gives the tests that put IPv4 addresses on devices
// they make (bridges, veth pairs) a network of their own: a /24 of the
// documentation and benchmark ranges that no route or address of the host
// overlaps. A test address inside the host's own network (these machines'
// eth0 is on 192.0.2.0/24, its gateway 192.0.2.1) would take the host's
// traffic to that network onto the test's device.
//
// It only reads the routing tables (ip route show table all); it imports
// nothing of the project.
package testnet
