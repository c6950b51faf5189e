package repository

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// SourceKind says how a repository's source is mounted.
type SourceKind int

// Source kinds.
const (
	// NFS is host:/path, mounted with mount -t nfs.
	NFS SourceKind = iota + 1
	// BlockDevice is a path under /dev, mounted with mount(8), which
	// detects the file system.
	BlockDevice
	// LocalDir is any other absolute path: a directory, bind-mounted.
	LocalDir
)

func (k SourceKind) String() string {
	switch k {
	case NFS:
		return "nfs"
	case BlockDevice:
		return "block device"
	case LocalDir:
		return "local directory"
	}
	return fmt.Sprintf("SourceKind(%d)", int(k))
}

// Source is a parsed repository source.
type Source struct {
	Kind SourceKind
	Raw  string // as written; what mount(8) is given
	Host string // NFS only: the server (name, IPv4 address, or [IPv6])
	Path string // the export (NFS) or the absolute path
}

// MaxSourceLen bounds a source's length (PATH_MAX).
const MaxSourceLen = 4096

// ParseSource reads a repository source: an NFS export host:/path, a
// block device /dev/..., or a local directory (any other absolute path).
// Paths must be clean (no "..", "//", "." or trailing slash except "/"
// itself) and free of blanks and control characters, so that what is
// mounted is exactly what was written.
func ParseSource(s string) (Source, error) {
	src := Source{Raw: s}
	if s == "" {
		return src, fmt.Errorf("empty source")
	}
	if len(s) > MaxSourceLen {
		return src, fmt.Errorf("source is longer than %d bytes", MaxSourceLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return src, fmt.Errorf("source %q contains a blank or control character", clip(s, 80))
		}
	}
	if strings.HasPrefix(s, "/") {
		if err := checkPath(s); err != nil {
			return src, err
		}
		src.Path = s
		src.Kind = LocalDir
		if strings.HasPrefix(s, "/dev/") {
			src.Kind = BlockDevice
		} else if s == "/dev" {
			return src, fmt.Errorf("source /dev is not a block device")
		}
		return src, nil
	}
	host, path, ok := splitNFS(s)
	if !ok {
		return src, fmt.Errorf("source %q is neither an NFS export (host:/path), a block device (/dev/...) nor an absolute directory", clip(s, 80))
	}
	if err := checkHost(host); err != nil {
		return src, fmt.Errorf("source %q: %w", clip(s, 80), err)
	}
	if err := checkPath(path); err != nil {
		return src, fmt.Errorf("source %q: export %w", clip(s, 80), err)
	}
	src.Kind, src.Host, src.Path = NFS, host, path
	return src, nil
}

// splitNFS splits host:/path; an IPv6 host is in brackets.
func splitNFS(s string) (host, path string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]:")
		if end < 0 {
			return "", "", false
		}
		return s[:end+1], s[end+2:], strings.HasPrefix(s[end+2:], "/")
	}
	i := strings.Index(s, ":")
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], strings.HasPrefix(s[i+1:], "/")
}

func checkHost(h string) error {
	if h == "" {
		return fmt.Errorf("empty host name")
	}
	if strings.HasPrefix(h, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
		if err != nil || !a.Is6() || !strings.HasSuffix(h, "]") {
			return fmt.Errorf("host %q is not a bracketed IPv6 address", h)
		}
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host name is longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid host name or address", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: a label may not start or end with '-'", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q: %q is not allowed in a host name", h, c)
			}
		}
	}
	return nil
}

func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q is not absolute", clip(p, 80))
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (write %s)", clip(p, 80), clip(filepath.Clean(p), 80))
	}
	return nil
}

// within reports whether path p is dir or below it (both clean, absolute).
func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}
