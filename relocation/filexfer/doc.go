// Package filexfer is the offline-transfer stream: it moves the disk images
// of a stopped domain from one host to another over a relocation
// connection. The copy is sparse-aware (holes and all-zero pages are never
// sent and stay holes on the receiver), every 1 MiB block carries a SHA-256
// that the receiver checks before writing, every file ends with a content
// digest (Digest) that both sides compute, and an interrupted copy resumes
// from the receiver's last durable, verified block.
//
// It owns the stream format (README.md), the sender, the receiver with its
// staging folder and journal, and Digest, the checksum a detach manifest
// records. It knows nothing about domains, repositories or the agent: the
// caller names the files, the staging folder and what to do after the
// stream ends. It imports no other package of this module.
package filexfer
