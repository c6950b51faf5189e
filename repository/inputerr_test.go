package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Add classifies what the caller got wrong: a malformed source or options
// is ErrBadInput, a source without .ovsrepo ErrNotRepository, each with its
// own sentence; nothing else is classified so.
func TestAddInputErrorsClassified(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		src, opts, want string
		kind            error
	}{
		{"", "", "empty source", ErrBadInput},
		{"relative/dir", "", "neither an NFS export", ErrBadInput},
		{"/bad\x01path", "", "control character", ErrBadInput},
		{"/srv/x", strings.Repeat("o", MaxOptionsLen+1), "mount options are longer", ErrBadInput},
	} {
		_, err := e.m.Add(ctx, tc.src, tc.opts)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%q, %q) = %v, want %v saying %q", tc.src, tc.opts, err, tc.kind, tc.want)
		}
		if errors.Is(err, ErrNotRepository) || errors.Is(err, ErrConfigured) {
			t.Errorf("Add(%q): classified twice: %v", tc.src, err)
		}
	}
	empty := filepath.Join(e.dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Add(ctx, empty, "")
	if !errors.Is(err, ErrNotRepository) || errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "is not a repository") {
		t.Errorf("Add of a directory without %s: %v", MetadataFile, err)
	}
}
