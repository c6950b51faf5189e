// Package pagexfer is the page-transfer subsystem that runs inside an
// ovs-vmm process. It owns:
//
//   - the versioned stream format (README.md has the byte-level tables):
//     header (domain config, memory size, vCPUs, engine, migration ID,
//     feature flags), rounds of page batches with zero pages as flags and a
//     CRC-32C per round, the vCPU/engine state, and end-of-image totals;
//     optionally batches compressed with s2 or zstd (used only when they
//     shrink) and the image split over parallel streams by page stripes;
//     the decoder is bounded (a hostile stream can neither make it
//     allocate without limit nor write outside guest memory);
//   - Send: live pre-copy driven by the engine's dirty log (populated
//     memory only in the first pass, xend's skip of pages dirtied again
//     within a round, a stop rule from measured bandwidth and dirty rate
//     against a downtime target with xend's 30-round and 3x backstops,
//     auto-converge throttling, a rate cap), or non-live one-pass;
//     SendStreams over several connections;
//   - Receive and ReceiveStreams: apply an image to a Sink (FdSink: pwrite
//     and hole punching on the target memfd; the VMM lands huge-page
//     memory through its mapping instead: the stream does not say what
//     the memory is made of, the target chooses), checking every checksum and
//     count;
//   - the control messages of the two-phase commit that follows the image
//     (Verified/Failed, Commit/Abort, Resumed/ResumeFailed);
//   - SaveTo and Restore: the same stream to and from a file.
//
// It knows guest memory only through the Source and Sink interfaces
// declared here and must not import vmm (vmm imports it) nor anything
// above it; sockets, handshakes and processes belong to the caller.
package pagexfer
