// Package ramcheck verifies, before a migrated guest may resume, that the
// target's RAM equals the source's, and mends the pages that differ.
//
// Why: Debian's QEMU 7.2 on TCG has been seen to leave 4-8 pages different
// between source and target after a live migration of a 1 GiB guest (issue
// 14). So the guest's RAM is a memory file (QEMU's memory-backend-file
// share=on under /dev/shm) that ovs-vmm maps on both sides with Map. When
// the source is paused and the target has loaded the migration stream (and
// is paused too), the two compare their RAM over the migration connection:
// Source on the source host, Target on the target host. Chunks whose
// checksums differ are sent again and written into the target's RAM; if
// more than Options.MaxResend bytes differ, the check gives up with
// ErrTooDifferent and the caller aborts the migration (resumes the source).
//
// It owns: the mapping of the RAM file (Map), the chunk checksums (XXH3-128
// of each chunk, computed by Options.Workers goroutines; measured in
// bench_test.go against CRC-64, CRC-32C and XXH64, and against memcpy of
// the same buffer), and the protocol below. It must not touch QEMU, QMP,
// processes or the commit that follows: the caller pauses both guests,
// hands over the connection once QEMU has let go of it, and decides from the
// returned error whether the target may resume. It imports nothing of the
// project.
//
// # Protocol (version 1)
//
// Every message is a frame: type (1 byte), payload length (4 bytes, big
// endian), payload. Every payload has a fixed length or one bounded by the
// chunk size and the RAM size that both sides agreed on in Hello/Accept; a
// frame whose type or length is not what the state expects ends the check
// with ErrProtocol before its payload is read. The frame header, Hello and
// Accept keep their layout in every version, so two versions still tell
// each other apart (ErrMismatch) instead of misreading.
//
// The TARGET SPEAKS FIRST: the connection carried QEMU's migration stream
// just before, and a byte the source wrote before the target had finished
// loading could be swallowed by QEMU's reader. The source writes nothing
// until it has read a valid Hello.
//
//	target                                            source
//	  | (hashing its RAM)                                 | (hashing its RAM)
//	  |--- Hello: magic, version, page size, ----------->|
//	  |    chunk size, RAM size, MaxResend               |
//	  |<-- Accept: status (ok | mismatch), the source's -|  mismatch: both
//	  |    version, page size, chunk size, RAM size      |  end, ErrMismatch
//	  |--- Sums: first index, XXH3-128 × n ------------->|  (all chunks, in
//	  |    ... (at most 4096 sums a frame)               |  order)
//	  |<-- Resend: status (resend | too different | -----|  not resend: both
//	  |    source changed), chunks, bytes                |  end, no page written
//	  |<-- Chunk: index, XXH3-128, data ... × chunks ----|  increasing index
//	  |--- Verdict: status (mended | still different | ->|
//	  |    corrupt), chunks, pages, still, bytes         |
//	  end                                                 end
//
// Payloads (big endian):
//
//	Hello   36 B: "OVSRAMCK", version u16, 0 u16, page size u32,
//	              chunk size u32, RAM size u64, MaxResend u64
//	Accept  21 B: status u8 (0 ok, 1 mismatch), version u16, 0 u16,
//	              page size u32, chunk size u32, RAM size u64
//	Sums    4+16n B: first chunk u32, n checksums (1 <= n <= 4096)
//	Resend  13 B: status u8 (0 resend, 1 too different, 2 source changed),
//	              chunks u32, bytes u64
//	Chunk   20+len B: index u32, checksum [16], the chunk's bytes (its
//	              exact length: the chunk size, or less for the last one)
//	Verdict 21 B: status u8 (0 mended, 1 still different, 2 corrupt),
//	              chunks u32, pages u32, still different u32, bytes u64
//
// The source sends whole differing chunks (one round trip fewer than
// asking for page checksums; at the default 64 KiB chunk, 8 scattered
// pages cost 512 KiB, about 1 ms at loopback speed); the target writes only
// the 4 KiB pages that differ, counts them (Result.DifferentPages on both
// sides, the source learns it from the Verdict), checks each received
// chunk against its checksum before writing it and hashes the mended chunk
// again afterwards. The source hashes each chunk again before sending it
// (status "source changed": its RAM moved while it should be paused).
//
// # What is left in the target's RAM
//
// On ErrTooDifferent, ErrMismatch, ErrSourceChanged, or any error before
// the Resend message, the target's RAM is untouched: what QEMU loaded. On
// an error after it (ErrStillDifferent, a corrupt chunk, a broken
// connection, a cancelled context), it is partly mended. In every case
// where either side returns an error, the target must not be resumed: the
// caller discards it and resumes the source. Only a nil error on both
// sides means the target's RAM equals the source's (as far as XXH3-128 of
// every chunk can tell).
//
// # Cancelling
//
// ctx ends a check at any point: a conn with SetDeadline (a net.Conn) gets
// ctx's deadline and, when ctx is done, a deadline in the past; any other
// conn that is an io.Closer is closed. Source and Target clear the
// deadline on return. After an error the stream is at an unknown point and
// the connection can carry nothing more.
package ramcheck
