package repository

import "errors"

// ErrBadInput marks an error in what a caller gave: a malformed source or
// mount options. Nothing was mounted or written.
var ErrBadInput = errors.New("bad repository source or options")

// ErrNotRepository marks a source that mounts but holds no repository (no
// .ovsrepo), or whose metadata cannot be read.
var ErrNotRepository = errors.New("not a repository")

// ErrConfigured marks a source or repository that is configured already.
var ErrConfigured = errors.New("configured already")

// classified keeps err's message and adds kind to what errors.Is finds.
type classified struct{ kind, err error }

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.kind, e.err} }

func classify(kind, err error) error {
	if err == nil {
		return nil
	}
	return &classified{kind: kind, err: err}
}
