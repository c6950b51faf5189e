package ramcheck

import (
	"context"
	"fmt"
	"io"
)

// Target runs the check on the paused target once QEMU has loaded the
// migration stream: ram is its guest RAM (Map writable), conn the
// migration connection. It speaks first. A nil error means every chunk of
// ram now equals the source's; on any error the target must not resume
// (see doc.go for what each error leaves in ram).
func Target(ctx context.Context, conn io.ReadWriter, ram []byte, o Options) (Result, error) {
	s, err := newSession(ctx, "target", conn, ram, o)
	if err != nil {
		return Result{}, err
	}
	pending := startChecksums(ctx, ram, s.g, s.workers)
	res, err := s.target(pending)
	pending.stop()
	return s.finish(res, err)
}

func (s *session) target(pending *pendingSums) (Result, error) {
	res := Result{Chunks: s.g.chunks}
	mine := s.params()
	s.w.sendHello(mine)
	if err := s.w.flush("Hello"); err != nil {
		return res, err
	}
	status, theirs, err := s.w.readAccept()
	if err != nil {
		return res, fmt.Errorf("waiting for the source's Accept: %w", err)
	}
	if status == acceptMismatch {
		return res, fmt.Errorf("%w: the source has %v, the target %v: run both with the same memory size and ChunkSize", ErrMismatch, theirs, mine)
	}
	if !theirs.sameShape(mine) {
		return res, protoErr("the source accepted with %v, the target has %v", theirs, mine)
	}
	ours, err := pending.wait()
	if err != nil {
		return res, fmt.Errorf("hashing the target's RAM: %w", err)
	}
	s.w.sendSums(ours)
	if err := s.w.flush("the checksums"); err != nil {
		return res, err
	}
	plan, err := s.w.readResend()
	if err != nil {
		return res, fmt.Errorf("waiting for the source's Resend: %w", err)
	}
	res.DifferentChunks = int(plan.chunks)
	switch plan.status {
	case resendTooDifferent:
		return res, fmt.Errorf("%w: %d of %d chunks differ, %d bytes, more than the %d allowed; the target's RAM is unchanged", ErrTooDifferent, plan.chunks, s.g.chunks, plan.bytes, s.maxResend)
	case resendSourceChanged:
		return res, fmt.Errorf("%w (the source says); the target's RAM is unchanged", ErrSourceChanged)
	}
	if int64(plan.chunks) > int64(s.g.chunks) || plan.bytes > s.maxResend ||
		plan.bytes > uint64(plan.chunks)*uint64(s.g.chunkSize) {
		return res, protoErr("Resend of %d chunks, %d bytes, for %d chunks of %d and at most %d bytes", plan.chunks, plan.bytes, s.g.chunks, s.g.chunkSize, s.maxResend)
	}
	return s.receiveChunks(res, plan)
}

// receiveChunks reads the chunks the Resend announced, writes their
// differing pages into the RAM, hashes each mended chunk again and sends
// the Verdict. After a chunk that does not match its checksum it writes
// nothing more but still reads the rest, so that the source, which may be
// writing them, gets to read the Verdict.
func (s *session) receiveChunks(res Result, plan resendMsg) (Result, error) {
	buf := make([]byte, s.g.chunkSize)
	v := verdictMsg{status: verdictMended, chunks: plan.chunks}
	corrupt, last := -1, -1
	for k := 0; k < int(plan.chunks); k++ {
		i, want, data, err := s.w.readChunk(s.g, last, buf)
		if err != nil {
			return res, err
		}
		last = i
		if v.bytes += uint64(len(data)); v.bytes > plan.bytes {
			return res, protoErr("chunk %d goes beyond the %d bytes the Resend announced", i, plan.bytes)
		}
		if corrupt >= 0 {
			continue
		}
		if checksum(data) != want {
			corrupt, v.status = i, verdictCorrupt
			continue
		}
		lo, hi := s.g.bounds(i)
		v.pages += uint32(mend(s.ram[lo:hi], data))
		if checksum(s.ram[lo:hi]) != want {
			v.still++
		}
	}
	if v.bytes != plan.bytes {
		return res, protoErr("the chunks carried %d bytes, the Resend announced %d", v.bytes, plan.bytes)
	}
	if v.still > 0 && v.status == verdictMended {
		v.status = verdictStillDifferent
	}
	res.DifferentPages, res.BytesResent = int(v.pages), v.bytes
	s.w.sendVerdict(v)
	if err := s.w.flush("the Verdict"); err != nil {
		return res, err
	}
	switch {
	case corrupt >= 0:
		return res, fmt.Errorf("%w: chunk %d arrived with data that does not match its checksum (a corrupted stream); the chunks before it were written", ErrStillDifferent, corrupt)
	case v.still > 0:
		return res, fmt.Errorf("%w: %d of the %d mended chunks hash differently from the source's: does something else write the target's RAM?", ErrStillDifferent, v.still, v.chunks)
	}
	return res, nil
}
