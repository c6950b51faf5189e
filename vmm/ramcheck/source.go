package ramcheck

import (
	"context"
	"fmt"
	"io"
)

// Source runs the check on the paused source: ram is its guest RAM (Map
// read-only), conn the migration connection once QEMU has let go of it.
// It writes nothing before the target's Hello. A nil error means the
// target confirmed that its RAM now equals ram; any error means the
// target must not resume (see doc.go for what each error leaves).
func Source(ctx context.Context, conn io.ReadWriter, ram []byte, o Options) (Result, error) {
	s, err := newSession(ctx, "source", conn, ram, o)
	if err != nil {
		return Result{}, err
	}
	pending := startChecksums(ctx, ram, s.g, s.workers)
	res, err := s.source(pending)
	pending.stop()
	return s.finish(res, err)
}

func (s *session) source(pending *pendingSums) (Result, error) {
	res := Result{Chunks: s.g.chunks}
	hello, err := s.accept()
	if err != nil {
		return res, err
	}
	theirs := make([]sum, s.g.chunks)
	if err := s.w.readSums(theirs); err != nil {
		return res, fmt.Errorf("reading the target's checksums: %w", err)
	}
	ours, err := pending.wait()
	if err != nil {
		return res, fmt.Errorf("hashing the source's RAM: %w", err)
	}
	diff := differing(ours, theirs)
	res.DifferentChunks = len(diff)
	limit := min(s.maxResend, hello.maxResend)
	plan := resendMsg{status: resendGo, chunks: uint32(len(diff)), bytes: s.resendBytes(diff)}
	if plan.bytes > limit {
		plan.status = resendTooDifferent
		err = fmt.Errorf("%w: %d of %d chunks differ, %d bytes, more than the %d allowed", ErrTooDifferent, len(diff), s.g.chunks, plan.bytes, limit)
	} else if changed := s.changedChunk(diff, ours); changed >= 0 {
		plan.status = resendSourceChanged
		err = fmt.Errorf("%w: chunk %d (from byte %d) hashes differently now", ErrSourceChanged, changed, changed*s.g.chunkSize)
	}
	s.w.sendResend(plan)
	if plan.status != resendGo {
		if ferr := s.w.flush("Resend"); ferr != nil {
			return res, ferr
		}
		return res, err
	}
	return s.sendChunks(res, diff, ours, plan)
}

// accept reads the target's Hello and answers it: Accept if both sides
// can compare their RAM, else Accept with status mismatch and ErrMismatch.
func (s *session) accept() (params, error) {
	hello, err := s.w.readHello()
	if err != nil {
		return params{}, fmt.Errorf("waiting for the target's Hello: %w", err)
	}
	mine := s.params()
	status := uint8(acceptOK)
	if !hello.sameShape(mine) {
		status = acceptMismatch
	}
	s.w.sendAccept(status, mine)
	if err := s.w.flush("Accept"); err != nil {
		return params{}, err
	}
	if status == acceptMismatch {
		return params{}, fmt.Errorf("%w: the target has %v, the source %v: run both with the same memory size and ChunkSize", ErrMismatch, hello, mine)
	}
	return hello, nil
}

// changedChunk hashes the differing chunks again and returns the first
// whose checksum moved since the first pass, or -1.
func (s *session) changedChunk(diff []int, ours []sum) int {
	for _, i := range diff {
		lo, hi := s.g.bounds(i)
		if checksum(s.ram[lo:hi]) != ours[i] {
			return i
		}
	}
	return -1
}

// sendChunks sends the differing chunks and checks the target's Verdict.
func (s *session) sendChunks(res Result, diff []int, ours []sum, plan resendMsg) (Result, error) {
	for _, i := range diff {
		if err := s.ctx.Err(); err != nil {
			return res, err
		}
		lo, hi := s.g.bounds(i)
		s.w.sendChunk(i, ours[i], s.ram[lo:hi])
	}
	if err := s.w.flush("the differing chunks"); err != nil {
		return res, err
	}
	res.BytesResent = plan.bytes
	v, err := s.w.readVerdict()
	if err != nil {
		return res, fmt.Errorf("waiting for the target's Verdict: %w", err)
	}
	res.DifferentPages = int(v.pages)
	if v.status == verdictCorrupt {
		return res, fmt.Errorf("%w: the target received a chunk that does not match its checksum (a corrupted stream)", ErrStillDifferent)
	}
	if v.chunks != plan.chunks || v.bytes != plan.bytes {
		return res, protoErr("the Verdict counts %d chunks, %d bytes; %d chunks, %d bytes were sent", v.chunks, v.bytes, plan.chunks, plan.bytes)
	}
	if v.status == verdictStillDifferent || v.still > 0 {
		return res, fmt.Errorf("%w: %d of the %d resent chunks", ErrStillDifferent, v.still, v.chunks)
	}
	return res, nil
}
