// Package auth checks API credentials: the configured user and a password
// stored only as a salted bcrypt hash, with failed logins slowed down per
// peer address. It owns hashing (for `ovs-agent configure` and
// `ovs-agent hash-password`) and verification; it never logs or keeps a
// password in clear.
package auth
