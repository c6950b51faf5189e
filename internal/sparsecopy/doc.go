// Package sparsecopy copies a file's content and keeps its holes: only the
// data ranges (SEEK_DATA/SEEK_HOLE) are copied, with copy_file_range where
// the kernel allows it (plain reads and writes where it does not), and the
// copy is truncated to the source's size, so what was a hole stays one.
// A file system without SEEK_DATA gets a full copy.
//
// It owns only that copy; the caller opens both files (repository copies a
// template's disk images this way, inside the repository's os.Root). It
// imports nothing of the project.
package sparsecopy
