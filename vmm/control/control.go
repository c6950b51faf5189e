package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Operations a Request may name.
const (
	OpInfo     = "info"     // Info of the VMM and its machine
	OpPause    = "pause"    // stop the vCPUs at a consistent point
	OpResume   = "resume"   // continue after pause
	OpShutdown = "shutdown" // stop the machine cleanly and exit
	OpDestroy  = "destroy"  // stop at once and exit
	OpConsole  = "console"  // read the console ring from Offset
	OpThrottle = "throttle" // slow the vCPUs to Percent% (auto-converge)
	// OpConsoleInput types Data into the guest's serial console.
	OpConsoleInput = "console-input"
	// OpSetMemory asks the guest to use MemoryBytes of memory (a balloon).
	OpSetMemory = "set-memory"

	// Migration, source side. OpMigrateSend comes with the connection to
	// the target (SCM_RIGHTS); the VMM streams the guest and reports
	// progress through OpMigrateStatus. Once the target has verified the
	// image the VMM waits for OpMigrateCommit or OpMigrateAbort (or
	// commits by itself when the send asked for AutoCommit).
	OpMigrateSend    = "migrate-send"
	OpMigrateStatus  = "migrate-status"
	OpMigrateCancel  = "migrate-cancel"
	OpMigrateCommit  = "migrate-commit"
	OpMigrateAbort   = "migrate-abort"
	OpMigrateResolve = "migrate-resolve" // after an in-doubt commit: OnTarget says where the guest runs
	// Migration, target side (a VMM started with --incoming): the
	// connection from the source comes with OpMigrateReceive.
	OpMigrateReceive = "migrate-receive"
	// OpMigrateAttach hands an incoming VMM one more connection of the
	// migration it receives (parallel streams; Migration names it).
	OpMigrateAttach = "migrate-attach"
	// OpSave writes a save image to Path and ends the VMM.
	OpSave = "save"
	// OpLease gives the domain a run-until time (RunUntil, on
	// CLOCK_BOOTTIME, see Monotonic) under its owner's Generation, for a pool with HA:
	// past that time the VMM pauses the guest by itself and stops its
	// disk writes (StateFenced), whatever became of its agent; a later
	// lease with a run-until time in the future resumes a guest it
	// fenced. A zero RunUntil ends the fencing (a domain outside a
	// pool); a Generation lower than the VMM's is refused. The answer
	// is the Info after it. See vmm's lease.go.
	OpLease = "lease"
)

// MaxConsoleInput bounds the bytes one OpConsoleInput may carry.
const MaxConsoleInput = 4096

// MigrationStatus is a migration as one VMM sees it.
type MigrationStatus struct {
	ID               string        `json:"id"`
	Target           string        `json:"target,omitempty"`
	Phase            Phase         `json:"phase"`
	Live             bool          `json:"live"`
	Round            int           `json:"round"`
	BytesSent        uint64        `json:"bytes_sent"`
	BytesRemaining   uint64        `json:"bytes_remaining"`
	DataPages        uint64        `json:"data_pages"`
	ZeroPages        uint64        `json:"zero_pages"`
	SkippedPages     uint64        `json:"skipped_pages"`
	Throughput       float64       `json:"throughput"`
	DirtyRate        float64       `json:"dirty_rate"`
	ExpectedDowntime time.Duration `json:"expected_downtime_ns"`
	Throttle         int           `json:"throttle_percent"`
	MaxThrottle      int           `json:"max_throttle_percent"`
	ThrottledFor     time.Duration `json:"throttled_ns"`
	Elapsed          time.Duration `json:"elapsed_ns"`
	Total            time.Duration `json:"total_ns"`
	Downtime         time.Duration `json:"downtime_ns"`
	// Where the downtime of a completed live migration went: the source
	// sending the last pages (pause to the image's last byte), the target
	// checking the image and building the machine (to its verified), and
	// the commit and the target's start (to its resumed).
	StopCopy time.Duration `json:"stop_copy_ns,omitempty"`
	// DrainWait is how long the source waited, the guest running, for
	// the target to apply the pre-copy rounds before the pause.
	DrainWait  time.Duration `json:"drain_wait_ns,omitempty"`
	Verify     time.Duration `json:"verify_ns,omitempty"`
	Resume     time.Duration `json:"resume_ns,omitempty"`
	StopReason string        `json:"stop_reason,omitempty"`
	// RAMCheck is how long the qemu engine's comparison of the source's
	// and the target's RAM took (part of the downtime), and MendedPages
	// how many 4 KiB pages it found different and sent again.
	RAMCheck    time.Duration `json:"ram_check_ns,omitempty"`
	MendedPages int           `json:"mended_pages,omitempty"`
	Error       string        `json:"error,omitempty"`
	// Parallel streams and compression of the page stream.
	Streams           int    `json:"streams,omitempty"`
	Compression       string `json:"compression,omitempty"` // what was asked: none, s2, zstd, auto
	Batches           uint64 `json:"batches,omitempty"`     // page batches sent (received, on a target)
	CompressedBatches uint64 `json:"compressed_batches,omitempty"`
	BatchBytes        uint64 `json:"batch_bytes,omitempty"`      // bytes of the batches before compression
	BatchWireBytes    uint64 `json:"batch_wire_bytes,omitempty"` // and as sent
}

// Request is one command to the VMM.
type Request struct {
	Op      string `json:"op"`
	Offset  int64  `json:"offset,omitempty"`  // OpConsole: first byte wanted
	Max     int    `json:"max,omitempty"`     // OpConsole: most bytes wanted
	Percent int    `json:"percent,omitempty"` // OpThrottle
	// OpConsoleInput: the bytes to type (at most MaxConsoleInput), as
	// they are (base64 in JSON): any byte, UTF-8 or not, reaches the
	// guest.
	Bytes []byte `json:"bytes,omitempty"`
	// Data is the same bytes as a JSON string, for VMMs older than Bytes
	// (a JSON string turns bytes that are not UTF-8 into U+FFFD); a VMM
	// given both uses Bytes.
	Data string `json:"data,omitempty"`
	// OpSetMemory: the memory the guest is to use.
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	// Migration and save.
	Migration   string        `json:"migration,omitempty"` // id
	Target      string        `json:"target,omitempty"`    // where to, for the exit record
	Live        bool          `json:"live,omitempty"`
	RateLimit   int64         `json:"rate_limit,omitempty"` // bytes/s
	MaxDowntime time.Duration `json:"max_downtime_ns,omitempty"`
	Config      string        `json:"config,omitempty"` // vm.cfg text for the image header
	Path        string        `json:"path,omitempty"`   // OpSave
	OnTarget    bool          `json:"on_target,omitempty"`
	Reason      string        `json:"reason,omitempty"`
	// OpMigrateSend: the page compression ("", none, s2, zstd, auto); the
	// connections passed along are the streams, the first one carrying
	// the commit.
	Compress string `json:"compress,omitempty"`
	// AutoCommit (OpMigrateSend): commit as soon as the target verified
	// the image, unless the migration was cancelled or aborted first,
	// instead of keeping the guest paused until OpMigrateCommit comes. A
	// VMM that predates it ignores it and waits as before.
	AutoCommit bool `json:"auto_commit,omitempty"`
	// ProgressTimeout (OpMigrateSend): a page-stream write that moves no
	// byte for this long fails the migration, which resumes the guest
	// ([relocation] progress_timeout; 0: no limit). OpMigrateReceive: a
	// page-stream read that receives no byte for this long fails the
	// image, and the incoming VMM ends.
	ProgressTimeout time.Duration `json:"progress_timeout_ns,omitempty"`
	// OpEstimate: the measurement window (0: report the latest one).
	Window time.Duration `json:"window_ns,omitempty"`
	// OpLease: the time the guest may run until (0: no fencing) and
	// the generation of the domain's owner (the revision of its owner
	// key in the pool's etcd), which never decreases.
	RunUntil   Monotonic `json:"run_until_ns,omitempty"`
	Generation int64     `json:"generation,omitempty"`
	// Seq numbers the requests of a connection; the answer echoes it, so
	// that a client whose earlier call gave up waiting can tell that call's
	// late answer from the one it waits for.
	Seq uint64 `json:"seq,omitempty"`
}

// Response answers one Request.
type Response struct {
	Error     string           `json:"error,omitempty"`
	Info      *Info            `json:"info,omitempty"`
	Console   *Console         `json:"console,omitempty"`
	Migration *MigrationStatus `json:"migration,omitempty"`
	Estimate  *Estimate        `json:"estimate,omitempty"`
	Seq       uint64           `json:"seq,omitempty"` // the request's
	// After, when set, runs once the answer has been written (or could
	// not be): for a handler whose next step would end the process.
	After func() `json:"-"`
}

// Info describes the VMM and its machine.
type Info struct {
	Name        string    `json:"name"`
	UUID        string    `json:"uuid"`
	PID         int       `json:"pid"`
	Engine      string    `json:"engine"`
	State       State     `json:"state"`
	MemoryBytes uint64    `json:"memory_bytes"`
	VCPUs       int       `json:"vcpus"`
	Started     time.Time `json:"started"`
	// CPUTime is the VMM process's user+system CPU time.
	CPUTime time.Duration `json:"cpu_time_ns"`
	// ResidentBytes is guest memory actually populated (the memfd's data).
	ResidentBytes uint64 `json:"resident_bytes"`
	// DirtyRate is the guest's page-write rate in bytes per second,
	// averaged since the previous Info (or since start).
	DirtyRate float64 `json:"dirty_rate"`
	Throttle  int     `json:"throttle_percent"`
	// Workload counters from the guest.
	Writes   uint64 `json:"writes"`
	Verified uint64 `json:"verified"`
	Rounds   uint64 `json:"rounds"`
	Corrupt  uint64 `json:"corrupt"`
	// ConsoleEnd is the offset just past the newest console byte.
	ConsoleEnd int64 `json:"console_end"`
	// What the engine says of itself (vmm.Facts): the accelerator (kvm,
	// tcg; "" for the workload engines, which have none), the program's
	// version, its machine type and CPU model, and where its display
	// listens ("" without one).
	Accel         string `json:"accel,omitempty"`
	EngineVersion string `json:"engine_version,omitempty"`
	Machine       string `json:"machine,omitempty"`
	CPUModel      string `json:"cpu_model,omitempty"`
	VNC           string `json:"vnc,omitempty"`
	// BalloonBytes is the memory the guest has given back to the balloon's
	// target: what it uses now (0 without a balloon); MaxMemoryBytes the
	// most it may be given (maxmem).
	BalloonBytes   uint64 `json:"balloon_bytes,omitempty"`
	MaxMemoryBytes uint64 `json:"max_memory_bytes,omitempty"`
	// MemoryBacking is what guest memory is made of: 4k, hugetlb or thp
	// ("" before it is made); MemoryBackingWhy says why (the choice of
	// auto, or the option that asked for it).
	MemoryBacking    string `json:"memory_backing,omitempty"`
	MemoryBackingWhy string `json:"memory_backing_why,omitempty"`
	// The guest's disk and network I/O, in bytes, since it started.
	DiskReadBytes  uint64 `json:"disk_read_bytes,omitempty"`
	DiskWriteBytes uint64 `json:"disk_write_bytes,omitempty"`
	DiskReadOps    uint64 `json:"disk_read_ops,omitempty"` // the requests of those bytes
	DiskWriteOps   uint64 `json:"disk_write_ops,omitempty"`
	NetRxBytes     uint64 `json:"net_rx_bytes,omitempty"`
	NetTxBytes     uint64 `json:"net_tx_bytes,omitempty"`
	// PausedFor says why the guest's vCPUs are stopped although nobody
	// paused them: PausedForMigration during an outgoing migration's or
	// save's stop-and-copy (until the commit or the failure resumes it),
	// PausedForFence while fenced; empty otherwise.
	PausedFor PauseReason `json:"paused_for,omitempty"`
	// The domain's lease (OpLease): the generation of its owner (0:
	// none was given), the run-until time (0: no fencing) and the time
	// left until it (negative once passed). Fenced says the run-until
	// time passed and the guest does not run: the VMM paused it
	// (StateFenced), or it was paused already and may not resume;
	// FencedAt is when, and FenceDetail what the VMM did. While the
	// fence is under way (the engine's pause may take up to a minute)
	// Fenced is set already, the state is still the one before, and
	// FenceDetail says the guest is being stopped.
	Generation        int64         `json:"generation,omitempty"`
	RunUntil          Monotonic     `json:"run_until_ns,omitempty"`
	RunUntilRemaining time.Duration `json:"run_until_remaining_ns,omitempty"`
	Fenced            bool          `json:"fenced,omitempty"`
	FencedAt          time.Time     `json:"fenced_at,omitempty"`
	FenceDetail       string        `json:"fence_detail,omitempty"`
}

// Console is a piece of the console ring.
type Console struct {
	// Offset of Data's first byte in the whole console stream. It is later
	// than the requested offset when older bytes have left the ring.
	Offset int64  `json:"offset"`
	Data   string `json:"data"`
	// Next is the offset to ask for next time.
	Next int64 `json:"next"`
}

// Files a VMM keeps in its domain directory, that the agent reads (and
// removes before it starts a VMM there).
const (
	ConsoleFile = "console.log" // the guest's serial output, bounded
	ExitFile    = "exit.json"   // an Exit, written as the VMM ends
)

// Exit is what a VMM writes to its exit file before it ends, so that an
// agent that was not its parent can say why it stopped.
type Exit struct {
	Time   time.Time  `json:"time"`
	PID    int        `json:"pid"`
	Reason ExitReason `json:"reason"`
	Detail string     `json:"detail,omitempty"`
	Code   int        `json:"code"`
}

// WriteExit records e at path (atomically).
func WriteExit(path string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// ReadExit reads an exit record.
func ReadExit(path string) (*Exit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("exit record %s: %w", path, err)
	}
	return &e, nil
}

// maxLine bounds one request or answer line.
const maxLine = 4 << 20

// Client is a connection to a VMM. Calls are serialised.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	path string
	seq  uint64
	// lost: a call gave up waiting, so its answer (or the rest of it)
	// may still come.
	lost bool
}

// Dial connects to the VMM control socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("VMM control socket %s: %w", path, err)
	}
	return &Client{conn: c, r: bufio.NewReaderSize(c, 64<<10), path: path}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ErrVMM is an error the VMM answered with.
type ErrVMM struct{ Msg string }

func (e *ErrVMM) Error() string { return e.Msg }

// Call sends req and waits for the answer (or ctx).
func (c *Client) Call(ctx context.Context, req Request) (*Response, error) {
	return c.CallFiles(ctx, req)
}

// CallFiles sends req with open files passed along (SCM_RIGHTS): the VMM
// receives its own copies of the descriptors. The caller keeps its files.
func (c *Client) CallFiles(ctx context.Context, req Request, files ...*os.File) (*Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	req.Seq = c.seq
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		uc, ok := c.conn.(*net.UnixConn)
		if !ok {
			return nil, errors.New("passing files needs a unix socket")
		}
		_, _, err = uc.WriteMsgUnix(append(data, '\n'), unix.UnixRights(fds...), nil)
	} else {
		_, err = c.conn.Write(append(data, '\n'))
	}
	if err != nil {
		return nil, fmt.Errorf("VMM %s: %s: %w", c.path, req.Op, err)
	}
	var resp Response
	for {
		line, err := readLine(c.r)
		if err != nil {
			c.lost = true
			return nil, fmt.Errorf("VMM %s: %s: %w", c.path, req.Op, err)
		}
		resp = Response{}
		if err := json.Unmarshal(line, &resp); err != nil {
			if c.lost {
				continue // the rest of a late answer
			}
			return nil, fmt.Errorf("VMM %s: %s: bad answer: %w", c.path, req.Op, err)
		}
		if resp.Seq != 0 && resp.Seq < req.Seq {
			continue // the late answer to a call that gave up
		}
		c.lost = false
		break
	}
	if resp.Error != "" {
		return &resp, &ErrVMM{Msg: resp.Error}
	}
	return &resp, nil
}

// Info asks for the VMM's Info.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	resp, err := c.Call(ctx, Request{Op: OpInfo})
	if err != nil {
		return nil, err
	}
	if resp.Info == nil {
		return nil, errors.New("VMM answered info without info")
	}
	return resp.Info, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, errors.New("line too long")
		}
		if !isPrefix {
			return buf, nil
		}
	}
}

// Handler answers one request. files are the descriptors that came with it
// (SCM_RIGHTS); the handler owns them and must close the ones it does not
// keep.
type Handler func(req Request, files []*os.File) Response

// connEnded is called as serveConn ends, with the panic it recovered and
// its stack (nil: none), which go to stderr. A variable for the tests,
// which count the panics and wait for every connection's end.
var connEnded = func(r any, stack []byte) {
	if r != nil {
		fmt.Fprintf(os.Stderr, "panic: serving a control connection (recovered: the VMM and its guest go on): %v\n%s", r, stack)
	}
}

// Serve answers requests on l until it is closed. Each connection is served
// by its own goroutine; its requests are answered in order.
func Serve(l net.Listener, h Handler) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go serveConn(c, h)
	}
}

func serveConn(c net.Conn, h Handler) {
	defer c.Close()
	// A bug in serving one connection must not end the VMM, and the guest
	// with it: the connection ends, the panic and its stack go to stderr
	// (vmm.log, where the tests look for "panic: "), and the VMM serves
	// the next connection.
	defer func() {
		r := recover()
		var stack []byte
		if r != nil {
			stack = debug.Stack()
		}
		connEnded(r, stack)
	}()
	uc, _ := c.(*net.UnixConn)
	var pending []byte
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		// Answer every complete line already received.
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := pending[:i]
			pending = pending[i+1:]
			var req Request
			var resp Response
			if err := json.Unmarshal(line, &req); err != nil {
				resp = Response{Error: "bad request: " + err.Error()}
			} else {
				resp = h(req, files)
				resp.Seq = req.Seq
				files = nil
			}
			data, err := json.Marshal(resp)
			if err != nil {
				data, _ = json.Marshal(Response{Error: "cannot encode answer: " + err.Error()})
			}
			_, err = c.Write(append(data, '\n'))
			if resp.After != nil {
				resp.After()
			}
			if err != nil {
				return
			}
		}
		if len(pending) > maxLine {
			return
		}
		var n, oobn int
		var err error
		if uc != nil {
			n, oobn, _, _, err = uc.ReadMsgUnix(buf, oob)
		} else {
			n, err = c.Read(buf)
		}
		// On an error, ReadMsgUnix passes recvmsg's -1 through (an agent
		// killed with an answer unread gives ECONNRESET): nothing came.
		n, oobn = max(n, 0), max(oobn, 0)
		if oobn > 0 {
			files = append(files, parseRights(oob[:oobn])...)
		}
		pending = append(pending, buf[:n]...)
		if err != nil {
			return
		}
	}
}

// parseRights turns SCM_RIGHTS control messages into files.
func parseRights(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var out []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			out = append(out, os.NewFile(uintptr(fd), "passed-fd"))
		}
	}
	return out
}
