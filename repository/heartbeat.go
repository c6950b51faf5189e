package repository

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// MaxHeartbeatSize bounds the heartbeat file.
const MaxHeartbeatSize = 64 << 10

// HeartbeatEntry is one server's line in the pool heartbeat file:
//
//	host-id unix-seconds RFC3339-time
//
// Every server of the pool refreshes its own line on the shared cluster
// root; a line that stops changing is a server that stopped.
type HeartbeatEntry struct {
	HostID string
	Time   time.Time
}

const heartbeatHeader = "# ovs-agent pool heartbeat: host-id unix-seconds time, one line per server\n"

// CheckHostID checks a host id for the heartbeat file: 1 to 255 bytes,
// no blanks or control characters, not starting with '#'.
func CheckHostID(id string) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("host id %q: want 1 to 255 bytes", clip(id, 40))
	}
	if id[0] == '#' {
		return fmt.Errorf("host id %q may not start with '#'", clip(id, 40))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("host id %q contains a blank or control character", clip(id, 40))
		}
	}
	return nil
}

// ParseHeartbeat reads a heartbeat file. The file is on shared storage
// and written by every server, so it is untrusted: a bad line is an
// error naming the line, and the entries read before it are returned.
// The time is taken from the unix-seconds field; the readable time is
// only for people.
func ParseHeartbeat(data []byte) ([]HeartbeatEntry, error) {
	if len(data) > MaxHeartbeatSize {
		return nil, fmt.Errorf("heartbeat file is larger than %d bytes", MaxHeartbeatSize)
	}
	var out []HeartbeatEntry
	seen := map[string]int{}
	for _, l := range contentLines(data) {
		e, err := parseHeartbeatLine(l.text)
		if err != nil {
			return out, fmt.Errorf("heartbeat line %d: %w", l.n, err)
		}
		if first, dup := seen[e.HostID]; dup {
			return out, fmt.Errorf("heartbeat line %d: host %s again (first on line %d)", l.n, e.HostID, first)
		}
		seen[e.HostID] = l.n
		out = append(out, e)
	}
	return out, nil
}

func parseHeartbeatLine(text string) (HeartbeatEntry, error) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return HeartbeatEntry{}, fmt.Errorf("want `host-id unix-seconds [time]`")
	}
	if err := CheckHostID(f[0]); err != nil {
		return HeartbeatEntry{}, err
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || sec < 0 || sec > 1<<40 {
		return HeartbeatEntry{}, fmt.Errorf("%q is not a time in unix seconds", clip(f[1], 20))
	}
	return HeartbeatEntry{HostID: f[0], Time: time.Unix(sec, 0).UTC()}, nil
}

// mergeHeartbeat returns the good lines of data other than host's (a
// host given twice keeps its latest time), then host at now.
func mergeHeartbeat(data []byte, host string, now time.Time) []HeartbeatEntry {
	var out []HeartbeatEntry
	idx := map[string]int{}
	if len(data) <= MaxHeartbeatSize {
		for _, l := range contentLines(data) {
			e, err := parseHeartbeatLine(l.text)
			if err != nil || e.HostID == host {
				continue
			}
			if i, dup := idx[e.HostID]; dup {
				if e.Time.After(out[i].Time) {
					out[i].Time = e.Time
				}
				continue
			}
			idx[e.HostID] = len(out)
			out = append(out, e)
		}
	}
	return append(out, HeartbeatEntry{HostID: host, Time: now.UTC().Truncate(time.Second)})
}

// marshalHeartbeat renders entries.
func marshalHeartbeat(entries []HeartbeatEntry) []byte {
	var b bytes.Buffer
	b.WriteString(heartbeatHeader)
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %d %s\n", e.HostID, e.Time.Unix(), e.Time.UTC().Format(time.RFC3339))
	}
	return b.Bytes()
}

// ReadHeartbeat reads the heartbeat file of the cluster root mounted at
// dir.
func ReadHeartbeat(dir string) ([]HeartbeatEntry, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("read heartbeat: %w", err)
	}
	defer root.Close()
	data, err := boundedfile.ReadFileIn(root, HeartbeatFile, MaxHeartbeatSize)
	if err != nil {
		return nil, fmt.Errorf("read heartbeat %s/%s: %w", dir, HeartbeatFile, err)
	}
	return ParseHeartbeat(data)
}

// writeHeartbeat sets host's line of the heartbeat file in dir to now,
// keeping the other servers' good lines; lines that do not parse are
// dropped (the file is rewritten whole, through a temporary file and a rename, so
// readers never see a partial file). Two servers writing at the same
// moment may lose one update; the next refresh puts it back.
func writeHeartbeat(dir, host string, now time.Time) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer root.Close()
	data, err := boundedfile.ReadFileIn(root, HeartbeatFile, MaxHeartbeatSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		data = nil // unreadable or oversized: start over
	}
	entries := mergeHeartbeat(data, host, now)
	out := marshalHeartbeat(entries)
	if len(out) > MaxHeartbeatSize {
		out = marshalHeartbeat(entries[len(entries)-1:])
	}
	tmp := fmt.Sprintf(".%s.%s.tmp", HeartbeatFile, strconv.Itoa(os.Getpid()))
	if err := root.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("heartbeat %s/%s: %w", dir, HeartbeatFile, err)
	}
	if err := root.Rename(tmp, HeartbeatFile); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("heartbeat %s/%s: %w", dir, HeartbeatFile, err)
	}
	return nil
}
