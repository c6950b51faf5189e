package passwordfile

import (
	"os"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// MaxSize bounds a password file: it holds one line, a password of at most
// a few dozen bytes.
const MaxSize = 64 << 10

// Read returns the first line of the file at path, without its line end
// (\n or \r\n). An empty first line is an empty password, as it always was:
// whether that is allowed is the caller's (and the peer's) to say. Errors
// name the file.
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
	return strings.TrimRight(line, "\r"), nil
}
