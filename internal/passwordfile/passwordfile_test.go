package passwordfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

func file(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFirstLine(t *testing.T) {
	for text, want := range map[string]string{
		"s3cret":                "s3cret",
		"s3cret\n":              "s3cret",
		"s3cret\r\nsecond line": "s3cret",
		" spaced \n":            " spaced ", // blanks are part of a password
	} {
		if got, err := Read(file(t, text)); err != nil || got != want {
			t.Errorf("Read(%q) = %q, %v; want %q", text, got, err, want)
		}
	}
}

// An empty first line is an empty password, as before this package: the
// agent or the peer decides whether that is allowed.
func TestEmptyFirstLineIsEmptyPassword(t *testing.T) {
	for _, text := range []string{"", "\n", "\r\nsecond"} {
		if got, err := Read(file(t, text)); err != nil || got != "" {
			t.Errorf("Read(%q) = %q, %v; want an empty password", text, got, err)
		}
	}
}

func TestTooLargeRefused(t *testing.T) {
	p := file(t, "pw\n"+strings.Repeat("x", MaxSize))
	if _, err := Read(p); !errors.Is(err, boundedfile.ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Errorf("Read(oversized): %v", err)
	}
}

func TestMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none")
	if _, err := Read(p); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("Read(missing): %v", err)
	}
}

// A pipe, as --password-file <(command) gives, is read like a file.
func TestPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("piped\n")
	w.Close()
	if got, err := Read("/dev/fd/" + strconv.Itoa(int(r.Fd()))); err != nil || got != "piped" {
		t.Errorf("Read(pipe) = %q, %v", got, err)
	}
}
