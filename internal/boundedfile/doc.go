// Package boundedfile reads a regular file of bounded size without ever
// blocking on a FIFO or adopting a terminal: it opens O_NONBLOCK|O_NOCTTY
// (and O_NOFOLLOW when asked), refuses anything but a regular file
// (ErrNotRegular, naming the file and what it is), and reads at most a
// given number of bytes (ErrTooLarge beyond). agent.ini, xend-config.sxp,
// vm.cfg, the repositories files, repository metadata and heartbeats,
// detach manifests and the files an API caller names (through
// agent/fileaccess) are read this way.
//
// It owns only that sequence and its two refusals; it knows nothing of
// what the files mean, where they may lie (agent/fileaccess confines
// API-caller paths to roots) and imports nothing of the project.
package boundedfile
