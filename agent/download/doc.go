// Package download fetches a disk image from an http or https URL into a
// file of a directory (an os.Root the caller opened, a repository's
// VirtualDisks), for the Oracle VM Agent 3 call
// import_virtual_disk(url, disk_id, repo_id).
//
// It owns only the transfer: checking the URL (CheckURL) and the file name
// (CheckName), the GET with its redirect policy and timeouts, the size
// bound, writing the body sparsely (a block of zeros is skipped, not
// written, so a raw image keeps its holes) into a hidden temporary file,
// and making the final name without replacing anything. It imports nothing
// of the project, but uses go.uber.org/zap for progress logs.
//
// It does not touch anything but the one file it creates: it never
// replaces or removes an existing file (the destination must not exist,
// checked before connecting and again, atomically, by a hard link at the
// end), never leaves its temporary file behind on failure or cancel, and
// works only through the os.Root it is given, so a name cannot escape the
// directory. It knows nothing of repositories, disk ids or free space: the
// caller maps disk_id to a name, opens the directory and passes the free
// space as Options.MaxBytes. It never logs nor returns in an error the
// URL's userinfo or query (they may carry credentials): only
// scheme://host/path.
package download
