package filexfer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Stream identification.
const (
	Magic   = "OVS-FXFR"
	Version = 1
)

// Record kinds.
const (
	kindHeader   = 0x01 // sender: Header, JSON
	kindResume   = 0x02 // receiver: Resume, JSON
	kindBlock    = 0x03 // sender: one block's non-zero pages
	kindFileEnd  = 0x04 // sender: file index and content digest
	kindEnd      = 0x05 // sender: every file sent
	kindAbort    = 0x06 // either side: Abort, JSON; the copy is dropped
	kindMessage  = 0x07 // either side after the end: caller's JSON messages
	kindVerified = 0x08 // receiver: Verified, JSON
)

// Limits a receiver enforces before allocating anything.
const (
	MaxFiles    = 256
	MaxFileSize = 16 << 40 // 16 TiB
	maxJSON     = 1 << 20
	maxNameLen  = 255
	maxDepth    = 8
	blockHead   = 4 + 8 + PagesPerBlock/8 + 32 // file, block, bitmap, sha256
	maxBlockRec = blockHead + BlockSize
)

// Errors a receiver reports.
var (
	// ErrFormat: the stream is not a valid offline-transfer stream, or was
	// tampered with. The partial copy is dropped.
	ErrFormat = errors.New("bad offline-transfer stream")
	// ErrInterrupted: the stream ended early (connection lost). The
	// verified part of the copy is kept for a resume.
	ErrInterrupted = errors.New("offline transfer interrupted")
	// ErrAborted: the other side cancelled. The partial copy is dropped.
	ErrAborted = errors.New("offline transfer cancelled by the peer")
)

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Header opens a stream: what is sent.
type Header struct {
	Migration string `json:"migration"`
	Domain    string `json:"domain"` // the domain's UUID
	BlockSize int    `json:"block_size"`
	Files     []File `json:"files"`
}

// File is one file of a stream.
type File struct {
	// Name is where the file lands, relative to the receiver's folder.
	Name string `json:"name"`
	Size int64  `json:"size"`
	// ModTime (ns since the epoch) identifies this version of the file: a
	// partial copy resumes only if name, size and ModTime all match.
	ModTime int64 `json:"mtime_ns"`
	// Data is the bytes outside holes on the sender (an estimate of what
	// is sent).
	Data int64 `json:"data"`
}

// Resume is the receiver's answer to the header: where each file resumes.
type Resume struct {
	Files []ResumeFile `json:"files"`
}

// ResumeFile is where one file resumes: blocks below NextBlock are on the
// receiver, durable and verified. Done says the whole file is.
type ResumeFile struct {
	NextBlock uint64 `json:"next_block"`
	Done      bool   `json:"done,omitempty"`
}

// Verified is the receiver's answer to the end of the stream.
type Verified struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error,omitempty"`
	Digests []string `json:"digests,omitempty"`
}

// Abort says why a side gave up.
type Abort struct {
	Reason string `json:"reason"`
}

// ValidateName checks a file name of a stream or a manifest: relative,
// clean, inside the folder, no hidden components (the receiver keeps its
// own files there), printable.
func ValidateName(name string) error {
	switch {
	case name == "" || len(name) > maxNameLen:
		return fmt.Errorf("file name %q: empty or longer than %d bytes", name, maxNameLen)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return fmt.Errorf("file name %q: control characters or backslashes", name)
	case !filepath.IsLocal(name) || filepath.Clean(name) != name || strings.HasPrefix(name, "/"):
		return fmt.Errorf("file name %q: must be a clean path inside the folder", name)
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxDepth {
		return fmt.Errorf("file name %q: more than %d levels", name, maxDepth)
	}
	for _, p := range parts {
		if strings.HasPrefix(p, ".") {
			return fmt.Errorf("file name %q: components may not start with a dot", name)
		}
	}
	return nil
}

// Validate checks a header a peer sent.
func (h *Header) Validate() error {
	if h.BlockSize != BlockSize {
		return formatErr("block size %d; this agent uses %d", h.BlockSize, BlockSize)
	}
	if len(h.Files) > MaxFiles {
		return formatErr("%d files; at most %d", len(h.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(h.Files))
	for _, f := range h.Files {
		if err := ValidateName(f.Name); err != nil {
			return formatErr("%v", err)
		}
		if seen[f.Name] {
			return formatErr("file %q listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 || f.Size > MaxFileSize {
			return formatErr("file %q: size %d out of range", f.Name, f.Size)
		}
		if f.Data < 0 || f.Data > f.Size {
			return formatErr("file %q: data size %d out of range", f.Name, f.Data)
		}
	}
	for name := range seen {
		// a file may not also be a folder of another
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if seen[dir] {
				return formatErr("file %q is inside file %q", name, dir)
			}
		}
	}
	return nil
}

// writeRecord writes one framed record.
func writeRecord(w io.Writer, kind byte, body ...[]byte) error {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.LittleEndian.PutUint32(hdr[1:], uint32(n))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, b := range body {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, kind byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) > maxJSON {
		return fmt.Errorf("message of %d bytes is too large", len(data))
	}
	return writeRecord(w, kind, data)
}

// readFrame reads a record's kind and length, bounded per kind.
func readFrame(r io.Reader) (byte, int, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	kind, n := hdr[0], int(binary.LittleEndian.Uint32(hdr[1:]))
	limit := 0
	switch kind {
	case kindHeader, kindResume, kindAbort, kindMessage, kindVerified:
		limit = maxJSON
	case kindBlock:
		limit = maxBlockRec
	case kindFileEnd:
		limit = 4 + 32
	case kindEnd:
		limit = 0
	default:
		return 0, 0, formatErr("unknown record kind 0x%02x", kind)
	}
	if n > limit {
		return 0, 0, formatErr("record 0x%02x of %d bytes; at most %d", kind, n, limit)
	}
	return kind, n, nil
}

func readJSONBody(r io.Reader, n int, v any) error {
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return formatErr("%v", err)
	}
	return nil
}

// readJSON reads one record that must be of kind want (an abort is turned
// into ErrAborted).
func readJSON(r io.Reader, want byte, v any) error {
	kind, n, err := readFrame(r)
	if err != nil {
		return err
	}
	if kind == kindAbort && want != kindAbort {
		var a Abort
		if err := readJSONBody(r, n, &a); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", ErrAborted, a.Reason)
	}
	if kind != want {
		return formatErr("record 0x%02x where 0x%02x was due", kind, want)
	}
	return readJSONBody(r, n, v)
}

func writePreamble(w io.Writer) error {
	var b [12]byte
	copy(b[:], Magic)
	binary.LittleEndian.PutUint16(b[8:], Version)
	_, err := w.Write(b[:])
	return err
}

func readPreamble(r io.Reader) error {
	var b [12]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	if string(b[:8]) != Magic {
		return formatErr("not an offline-transfer stream")
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != Version {
		return formatErr("stream version %d; this agent reads %d", v, Version)
	}
	return nil
}

// WriteMessage sends one of the caller's JSON messages (after the stream,
// e.g. the commit between the agents).
func WriteMessage(w io.Writer, v any) error { return writeJSON(w, kindMessage, v) }

// ReadMessage reads one of the caller's JSON messages; an abort from the
// peer comes back as ErrAborted.
func ReadMessage(r io.Reader, v any) error { return readJSON(r, kindMessage, v) }

// WriteAbort tells the peer the copy is cancelled.
func WriteAbort(w io.Writer, reason string) error {
	return writeJSON(w, kindAbort, Abort{Reason: reason})
}
