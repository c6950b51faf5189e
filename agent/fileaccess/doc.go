// Package fileaccess confines the files an API caller names (vm.cfg paths,
// disk paths, save/restore images, detach/attach folders) to the allowed
// roots: the mounted repositories and the directories listed in
// [agent] file_dirs. A path is allowed only if it resolves, after symlinks,
// inside one of the roots; a file is opened only if it is a regular file,
// without ever blocking on a FIFO or a device.
//
// It owns the rule and its error (ErrOutside); opening without blocking and
// refusing what is not a regular file (ErrNotRegular) is
// internal/boundedfile's, the only package of the project it imports. It
// does not know where the roots come from (callers pass them fresh per
// call) and never reads or logs a file's content.
//
// Check then open. The rule is checked on the path, so whoever can change
// the directories between the check and the use could swap a component.
// Where this is closed: the vm.cfg of domain.create is read through the
// descriptor OpenRegular returned; domain.restore opens the resolved image
// O_NONBLOCK|O_NOFOLLOW, checks it, and hands that descriptor to the VMM
// (it reads /dev/fd/3), so the VMM reads the file that was checked. Where
// it is not, yet: domain.save passes the resolved path to the VMM, which
// creates it with O_CREAT|O_EXCL (a symlink or FIFO put in its place makes
// it fail with EEXIST; a parent directory replaced by a symlink after the
// check is not caught — handing the VMM an opened directory descriptor to
// create the image in, with openat, would close it); the checksums of a
// detach and an attach, and the offline copy, reopen a disk by its
// resolved path after checking it. Only someone who may already write in
// a repository or a file_dirs directory can use these windows.
package fileaccess
