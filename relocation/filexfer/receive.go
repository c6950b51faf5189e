package filexfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// JournalFile is the receiver's record of a partial copy, in its staging
// folder.
const JournalFile = ".journal.json"

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	// Staging is the folder that holds the copy while it arrives (created
	// if missing). A partial copy of the same files found there resumes.
	Staging string
	// Check, if set, vets the header before anything is written; its
	// error is sent to the sender as the reason of an abort.
	Check func(*Header) error
	// CheckpointBytes is how much data is written between two durable
	// checkpoints of the journal (default 16 MiB); there is also one at
	// least every CheckpointEvery (default 1 s).
	CheckpointBytes int64
	CheckpointEvery time.Duration
	Progress        func(Progress)
}

// ReceiveResult is what arrived.
type ReceiveResult struct {
	Header  Header
	Digests []string
	Progress
}

type journal struct {
	Domain string         `json:"domain"`
	Files  []journalEntry `json:"files"`
}

type journalEntry struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	ModTime   int64  `json:"mtime_ns"`
	NextBlock uint64 `json:"next_block"`
	Done      bool   `json:"done,omitempty"`
	Covered   int64  `json:"covered"` // data bytes below NextBlock
	Digest    []byte `json:"digest_state"`
}

// Receive reads an offline-transfer stream from rw into o.Staging and
// answers the sender. It returns after every file arrived and was verified
// (nil error), or with ErrInterrupted (the verified part stays in Staging
// for a resume), ErrAborted or ErrFormat (Staging is removed).
func Receive(ctx context.Context, rw io.ReadWriter, o ReceiveOptions) (*ReceiveResult, error) {
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = 16 << 20
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = time.Second
	}
	start := time.Now()
	br := bufio.NewReaderSize(rw, 256<<10)
	cr := &countingReader{r: br}
	interrupted := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isNetErr(err) {
			return fmt.Errorf("%w: %v", ErrInterrupted, err)
		}
		return err
	}
	if err := readPreamble(cr); err != nil {
		return nil, interrupted(err)
	}
	var h Header
	if err := readJSON(cr, kindHeader, &h); err != nil {
		return nil, interrupted(err)
	}
	if err := h.Validate(); err != nil {
		_ = WriteAbort(rw, err.Error())
		return nil, err
	}
	if o.Check != nil {
		if err := o.Check(&h); err != nil {
			_ = WriteAbort(rw, err.Error())
			return nil, err
		}
	}
	r := &receiver{o: o, h: &h, start: start, cr: cr, lastCkp: start}
	if err := r.open(); err != nil {
		_ = WriteAbort(rw, "the receiver cannot store the copy: "+err.Error())
		r.closeFiles()
		os.RemoveAll(o.Staging)
		return nil, fmt.Errorf("store the copy in %s: %w", o.Staging, err)
	}
	res := Resume{}
	for _, e := range r.j.Files {
		res.Files = append(res.Files, ResumeFile{NextBlock: e.NextBlock, Done: e.Done})
	}
	if err := writeJSON(rw, kindResume, &res); err != nil {
		r.checkpoint()
		r.closeFiles()
		return nil, interrupted(err)
	}
	err := r.run(ctx)
	if err == nil {
		err = r.finish()
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrFormat), errors.Is(err, ErrAborted):
			if !errors.Is(err, ErrAborted) {
				_ = writeJSON(rw, kindVerified, &Verified{Error: err.Error()})
			}
			r.closeFiles()
			os.RemoveAll(o.Staging)
			return nil, err
		default:
			r.checkpoint()
			r.closeFiles()
			return nil, interrupted(err)
		}
	}
	digests := make([]string, len(h.Files))
	for i := range r.files {
		digests[i] = FormatDigest(r.files[i].d.sum())
	}
	r.closeFiles()
	if err := writeJSON(rw, kindVerified, &Verified{OK: true, Digests: digests}); err != nil {
		return nil, interrupted(err)
	}
	out := &ReceiveResult{Header: h, Digests: digests, Progress: r.progress()}
	return out, nil
}

type rfile struct {
	f       *os.File
	d       *digester
	next    uint64 // blocks below are verified (written, maybe not yet durable)
	durable uint64 // blocks below are in the journal
	covered int64
	done    bool
}

type receiver struct {
	o        ReceiveOptions
	h        *Header
	j        journal
	files    []rfile
	start    time.Time
	cr       *countingReader
	resumed  int64
	sinceCkp int64
	lastCkp  time.Time
	lastRep  time.Time
	file     string
}

func (r *receiver) progress() Progress {
	var total, done int64
	for i, f := range r.h.Files {
		total += f.Data
		done += r.files[i].covered
	}
	return Progress{Total: total, Resumed: r.resumed, Done: min(done, total), Sent: r.cr.n, File: r.file, Elapsed: time.Since(r.start)}
}

// open loads the journal (if it matches the header) and opens every file.
func (r *receiver) open() error {
	if err := os.MkdirAll(r.o.Staging, 0o700); err != nil {
		return err
	}
	var old journal
	if data, err := os.ReadFile(filepath.Join(r.o.Staging, JournalFile)); err == nil {
		if json.Unmarshal(data, &old) != nil || old.Domain != r.h.Domain {
			old = journal{}
		}
	}
	prev := make(map[string]journalEntry)
	for _, e := range old.Files {
		prev[e.Name] = e
	}
	root, err := os.OpenRoot(r.o.Staging)
	if err != nil {
		return err
	}
	defer root.Close()
	r.j = journal{Domain: r.h.Domain}
	r.files = make([]rfile, len(r.h.Files))
	for i, f := range r.h.Files {
		e, ok := prev[f.Name]
		resume := ok && e.Size == f.Size && e.ModTime == f.ModTime && e.NextBlock <= numBlocks(f.Size)
		var d *digester
		if resume {
			d = newDigester(f.Size)
			if u, ok := d.h.(encoding.BinaryUnmarshaler); !ok || u.UnmarshalBinary(e.Digest) != nil {
				resume = false
			}
		}
		if dir := filepath.Dir(f.Name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		flags := os.O_RDWR | os.O_CREATE
		if !resume {
			flags |= os.O_TRUNC
			e = journalEntry{Name: f.Name, Size: f.Size, ModTime: f.ModTime}
			d = newDigester(f.Size)
		}
		fh, err := root.OpenFile(f.Name, flags, 0o600)
		if err != nil {
			return err
		}
		r.files[i] = rfile{f: fh, d: d, next: e.NextBlock, durable: e.NextBlock, covered: e.Covered, done: e.Done}
		if !resume {
			if err := fh.Truncate(f.Size); err != nil {
				return err
			}
		} else {
			r.resumed += e.Covered
		}
		r.j.Files = append(r.j.Files, e)
	}
	return r.writeJournal()
}

func (r *receiver) writeJournal() error {
	data, err := json.Marshal(&r.j)
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.o.Staging, JournalFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(r.o.Staging, JournalFile))
	}
	return err
}

// checkpoint makes the verified blocks durable and records them.
func (r *receiver) checkpoint() error {
	for i := range r.files {
		rf := &r.files[i]
		if rf.f == nil || rf.next == rf.durable && !rf.done {
			continue
		}
		if err := rf.f.Sync(); err != nil {
			return err
		}
		state, err := rf.d.h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		e := &r.j.Files[i]
		e.NextBlock, e.Done, e.Covered, e.Digest = rf.next, rf.done, rf.covered, state
		rf.durable = rf.next
	}
	r.sinceCkp, r.lastCkp = 0, time.Now()
	return r.writeJournal()
}

func (r *receiver) closeFiles() {
	for i := range r.files {
		if r.files[i].f != nil {
			r.files[i].f.Close()
			r.files[i].f = nil
		}
	}
}

func (r *receiver) report(force bool) {
	if r.o.Progress == nil || !force && time.Since(r.lastRep) < 200*time.Millisecond {
		return
	}
	r.lastRep = time.Now()
	r.o.Progress(r.progress())
}

// run reads records up to the end record.
func (r *receiver) run(ctx context.Context) error {
	buf := make([]byte, BlockSize)
	body := make([]byte, maxBlockRec)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		kind, n, err := readFrame(r.cr)
		if err != nil {
			return err
		}
		switch kind {
		case kindBlock:
			if n < blockHead {
				return formatErr("block record of %d bytes", n)
			}
			if _, err := io.ReadFull(r.cr, body[:n]); err != nil {
				return err
			}
			if err := r.block(body[:n], buf); err != nil {
				return err
			}
			if r.sinceCkp >= r.o.CheckpointBytes || time.Since(r.lastCkp) >= r.o.CheckpointEvery {
				if err := r.checkpoint(); err != nil {
					return err
				}
			}
			r.report(false)
		case kindFileEnd:
			if n != 4+32 {
				return formatErr("file-end record of %d bytes", n)
			}
			var b [4 + 32]byte
			if _, err := io.ReadFull(r.cr, b[:]); err != nil {
				return err
			}
			i := int(binary.LittleEndian.Uint32(b[:]))
			if i >= len(r.files) || r.files[i].done {
				return formatErr("file-end for file %d", i)
			}
			rf := &r.files[i]
			rf.next = numBlocks(r.h.Files[i].Size)
			rf.covered = r.h.Files[i].Data
			if got := rf.d.sum(); string(got[:]) != string(b[4:]) {
				return formatErr("%s: content digest differs from the sender's (the copy is dropped)", r.h.Files[i].Name)
			}
			rf.done = true
			if err := r.checkpoint(); err != nil {
				return err
			}
		case kindEnd:
			return nil
		case kindAbort:
			var a Abort
			if err := readJSONBody(r.cr, n, &a); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s", ErrAborted, a.Reason)
		default:
			return formatErr("record 0x%02x inside the stream", kind)
		}
	}
}

// block verifies one block record and writes its pages.
func (r *receiver) block(b []byte, buf []byte) error {
	i := int(binary.LittleEndian.Uint32(b[0:]))
	idx := binary.LittleEndian.Uint64(b[4:])
	var bitmap [PagesPerBlock / 8]byte
	copy(bitmap[:], b[12:])
	var sum [32]byte
	copy(sum[:], b[12+PagesPerBlock/8:])
	pages := b[blockHead:]
	if i >= len(r.files) {
		return formatErr("block for file %d of %d", i, len(r.files))
	}
	rf, f := &r.files[i], r.h.Files[i]
	r.file = f.Name
	if rf.done {
		return formatErr("%s: block %d after its end", f.Name, idx)
	}
	if idx < rf.next || idx >= numBlocks(f.Size) {
		return formatErr("%s: block %d out of order (next %d of %d)", f.Name, idx, rf.next, numBlocks(f.Size))
	}
	n := blockLen(f.Size, idx)
	want, set := 0, 0
	for p := range PagesPerBlock {
		if bitmap[p/8]&(1<<(p%8)) == 0 {
			continue
		}
		if p*PageSize >= n {
			return formatErr("%s: block %d names page %d beyond the end", f.Name, idx, p)
		}
		want += min(PageSize, n-p*PageSize)
		set++
	}
	if set == 0 || want != len(pages) {
		return formatErr("%s: block %d carries %d bytes for %d pages", f.Name, idx, len(pages), set)
	}
	clear(buf[:n])
	off := 0
	for p := 0; p*PageSize < n; p++ {
		if bitmap[p/8]&(1<<(p%8)) == 0 {
			continue
		}
		l := min(PageSize, n-p*PageSize)
		copy(buf[p*PageSize:], pages[off:off+l])
		off += l
	}
	if sha256.Sum256(buf[:n]) != sum {
		return formatErr("%s: block %d fails its checksum", f.Name, idx)
	}
	// Write runs of set pages; unset pages stay holes.
	base := int64(idx) * BlockSize
	for p := 0; p*PageSize < n; {
		if bitmap[p/8]&(1<<(p%8)) == 0 {
			p++
			continue
		}
		q := p
		for q*PageSize < n && bitmap[q/8]&(1<<(q%8)) != 0 {
			q++
		}
		if _, err := rf.f.WriteAt(buf[p*PageSize:min(q*PageSize, n)], base+int64(p*PageSize)); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		p = q
	}
	rf.d.block(idx, sum)
	rf.next = idx + 1
	rf.covered = min(rf.covered+int64(want), f.Data)
	r.sinceCkp += int64(want)
	return nil
}

// finish checks that every file ended.
func (r *receiver) finish() error {
	for i, rf := range r.files {
		if !rf.done {
			return formatErr("stream ended without the end of %s", r.h.Files[i].Name)
		}
	}
	return r.checkpoint()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
