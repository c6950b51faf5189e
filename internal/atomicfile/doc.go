// Package atomicfile replaces a file's content so that a reader, or a
// crash, sees the old file or the new one and never a part of either:
// write a temporary file beside it, sync, rename over, sync the directory.
// The agent's state (domain.json, vm.cfg copies, the PID file, TLS keys,
// repository metadata and configuration) is written this way.
//
// It owns only that sequence (and, for an edit, keeping the file's owner:
// WriteFileOwned); it knows nothing of what the files mean and
// imports nothing of the project.
package atomicfile
