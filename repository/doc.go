// Package repository will own storage repositories: parsing
// /etc/ovs/repositories and /etc/ovs/repositories.options, watching their
// directory for changes, mounting each repository under /OVS/<uuid> (the
// cluster root at /OVS), the standard pool folders (running_pool, seed_pool,
// iso_pool, publish_pool, sharedDisk) and the pool heartbeat file.
//
// It may import config, never agent or cmd.
package repository
