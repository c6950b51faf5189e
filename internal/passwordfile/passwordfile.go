package passwordfile

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// MaxSize bounds a password file: it holds one line, a password of at most
// a few dozen bytes.
const MaxSize = 64 << 10

// ErrEmpty is the refusal of a file whose first line is empty.
var ErrEmpty = errors.New("the first line is empty; write the password on it")

// Read returns the first line of the file at path, without its line end
// (\n or \r\n). Errors name the file.
func Read(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := boundedfile.ReadAll(f, path, MaxSize)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	return line, nil
}
