// Package fileaccess confines the files an API caller names (vm.cfg paths,
// disk paths, save/restore images, detach/attach folders) to the allowed
// roots: the mounted repositories and the directories listed in
// [agent] file_dirs. A path is allowed only if it resolves, after symlinks,
// inside one of the roots; a file is opened only if it is a regular file,
// without ever blocking on a FIFO or a device.
//
// It owns the rule and its error (ErrOutside, ErrNotRegular). It does not
// know where the roots come from (callers pass them fresh per call), never
// reads or logs a file's content, and imports nothing of the project.
package fileaccess
