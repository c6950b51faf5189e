package pagexfer

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// SaveTo writes a save image of src to w: the same stream as a migration,
// non-live (the source is paused first and stays paused on success, as
// with Send), with no back-channel. The caller decides what happens to the
// source afterwards (xm save destroys it; a checkpoint resumes it).
func SaveTo(ctx context.Context, src Source, w io.Writer, opts Options, progress func(Progress)) (Result, error) {
	opts.Live = false
	return Send(ctx, src, w, opts, progress)
}

// Restore reads a save image from r (a file) into the Sink that open
// returns, like Receive, and also checks that nothing follows the image.
func Restore(ctx context.Context, r io.Reader, open func(Header) (Sink, error)) (Header, []byte, Stats, error) {
	h, state, st, err := Receive(ctx, r, open)
	if err != nil {
		return h, nil, st, fmt.Errorf("restore: %w", err)
	}
	var b [1]byte
	switch _, err := io.ReadFull(r, b[:]); {
	case errors.Is(err, io.EOF):
		return h, state, st, nil
	case err != nil:
		return h, nil, st, fmt.Errorf("restore %s: after the image: %w", h.ID, err)
	default:
		return h, nil, st, fmt.Errorf("restore %s: %w: data after the end of the image", h.ID, ErrFormat)
	}
}
