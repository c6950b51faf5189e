package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestGreetingAndCapabilities(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) { f.answer(r, "{}") })
	g := c.Greeting()
	want := Version{7, 2, 22, "Debian 1:7.2+dfsg-7+deb12u18+b2"}
	if g.Version != want || g.Version.String() != "7.2.22" {
		t.Errorf("version %+v, want %+v", g.Version, want)
	}
	if len(g.Capabilities) != 1 || g.Capabilities[0] != "oob" {
		t.Errorf("capabilities %q, want [oob]", g.Capabilities)
	}
}

func TestHandshakeRefusesWhatIsNotQMP(t *testing.T) {
	for name, first := range map[string]string{
		"not json":     "Welcome to my shell",
		"not greeting": `{"return": {}}`,
	} {
		t.Run(name, func(t *testing.T) {
			cc, sc := socketpair(t)
			defer cc.Close()
			defer sc.Close()
			go (&fake{t: t, conn: sc}).send(first)
			_, err := Connect(context.Background(), cc, Options{})
			if err == nil || !strings.Contains(err.Error(), "expected the QMP greeting") {
				t.Fatalf("err %v, want one about the greeting", err)
			}
		})
	}
}

func TestHandshakeTimeoutGivesCtxError(t *testing.T) {
	cc, sc := socketpair(t) // the fake never says anything
	defer cc.Close()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := Connect(ctx, cc, Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
}

func TestExecuteSendsArgumentsAndDecodesReturn(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) {
		if r.Execute != "migrate" || string(r.Arguments) != `{"uri":"fd:mig"}` {
			t.Errorf("got %s %s", r.Execute, r.Arguments)
		}
		f.answer(r, `{"status": "paused", "singlestep": false, "running": false}`)
	})
	var s Status
	if err := c.Execute(context.Background(), "migrate", map[string]string{"uri": "fd:mig"}, &s); err != nil {
		t.Fatal(err)
	}
	if s != (Status{StatusPaused, false}) {
		t.Errorf("status %+v", s)
	}
	if err := c.Execute(context.Background(), "x", []int{1}, nil); err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Errorf("array arguments: err %v, want a refusal", err)
	}
}

func TestQMPErrorIsTyped(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) {
		f.send(`{"id": ` + string(r.ID) + `, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}`)
	})
	err := c.Execute(context.Background(), "nope", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("err %v (%T), want *Error", err, err)
	}
	if qe.Command != "nope" || qe.Class != "CommandNotFound" || qe.Desc != "The command nope has not been found" {
		t.Errorf("error %+v", qe)
	}
	if got := err.Error(); got != "qmp nope: CommandNotFound: The command nope has not been found" {
		t.Errorf("message %q", got)
	}
}

// An answer with another id, or none, is not this command's: after a
// command abandoned by its ctx, the next one gets its own answer.
func TestAnswersMatchedByID(t *testing.T) {
	var first req
	c := serve(t, Options{}, func(f *fake, r req) {
		switch r.Execute {
		case "slow":
			first = r // answered only after the next command came
		case "query-status":
			f.send(`{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}`)
			f.answer(first, `{"status": "inmigrate", "running": false}`)
			f.send(`{"return": {"status": "bogus"}, "id": 424242}`)
			f.answer(r, `{"status": "running", "running": true}`)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Execute(ctx, "slow", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: err %v, want context.DeadlineExceeded", err)
	}
	s, err := c.QueryStatus(context.Background())
	if err != nil || s.Status != StatusRunning || !s.Running {
		t.Fatalf("query-status: %+v, %v; want running", s, err)
	}
}

func TestEventsInterleavedWithAnswers(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) {
		f.send(`{"timestamp": {"seconds": 1796283686, "microseconds": 828662}, "event": "STOP"}`)
		f.answer(r, "{}")
		f.send(`{"timestamp": {"seconds": 1796283687, "microseconds": 5}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`)
	})
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := <-c.Events()
	if e.Name != "STOP" || e.Data != nil || !e.Timestamp.Equal(time.Unix(1796283686, 828662000)) {
		t.Errorf("first event %+v", e)
	}
	e = <-c.Events()
	var d struct{ Reason string }
	if e.Name != "SHUTDOWN" || json.Unmarshal(e.Data, &d) != nil || d.Reason != "host-qmp-quit" {
		t.Errorf("second event %+v", e)
	}
}

// When nobody reads Events, the reader goes on: the oldest events make room.
func TestEventsFullDropOldest(t *testing.T) {
	c := serve(t, Options{EventBuffer: 2}, func(f *fake, r req) {
		for _, n := range []string{"A", "B", "C", "D", "E"} {
			f.send(`{"event": "` + n + `", "timestamp": {"seconds": 1, "microseconds": 0}}`)
		}
		f.answer(r, "{}") // read after the events, so they are all queued
	})
	if err := c.Cont(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a, b := <-c.Events(), <-c.Events(); a.Name != "D" || b.Name != "E" {
		t.Errorf("kept %s %s, want D E", a.Name, b.Name)
	}
	if c.Dropped() != 3 {
		t.Errorf("dropped %d, want 3", c.Dropped())
	}
}

func TestHugeLineRefused(t *testing.T) {
	c := serve(t, Options{MaxLine: 4096}, func(f *fake, r req) {
		huge := []byte(`{"return": "` + strings.Repeat("x", 1<<20) + `"}`)
		go f.conn.Write(huge) // fails once the client stops reading and closes
	})
	err := c.Execute(context.Background(), "query-qmp-schema", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "longer than 4096 bytes") {
		t.Fatalf("err %v, want one about the line limit", err)
	}
	<-c.Done()
	if c.Err() != err {
		t.Errorf("Err %v, want the same as Execute's", c.Err())
	}
	if err := c.Stop(context.Background()); err != c.Err() {
		t.Errorf("after: %v", err)
	}
}

func TestGarbageLineEndsConnection(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) { f.send("\x00\x01garbage") })
	err := c.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("err %v, want one saying the line is not JSON", err)
	}
}

func TestCloseUnblocksWaiters(t *testing.T) {
	received := make(chan struct{})
	c := serve(t, Options{}, func(f *fake, r req) { close(received) }) // never answers
	errs := make(chan error, 2)
	go func() { errs <- c.Stop(context.Background()) }()
	<-received
	go func() { errs <- c.Cont(context.Background()) }() // waits behind stop, or finds the client closed
	c.Close()
	for range 2 {
		if err := <-errs; err != ErrClosed {
			t.Errorf("err %v, want ErrClosed", err)
		}
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events still open after Close")
	}
}

func TestSilentQEMUGivesCtxError(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) {}) // never answers
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.QueryMigrate(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if c.Err() != nil {
		t.Errorf("the connection ended: %v", c.Err())
	}
}

func TestDisconnectAndQuit(t *testing.T) {
	c := serve(t, Options{}, func(f *fake, r req) {
		f.send(`{"event": "SHUTDOWN", "timestamp": {"seconds": 1, "microseconds": 0}}`)
		f.conn.Close() // QEMU exits before it answers
	})
	if err := c.Quit(context.Background()); err != nil {
		t.Fatalf("quit: %v", err)
	}
	<-c.Done()
	if c.Err() != ErrDisconnected {
		t.Errorf("Err %v, want ErrDisconnected", c.Err())
	}
	if err := c.Stop(context.Background()); !errors.Is(err, ErrDisconnected) {
		t.Errorf("stop after: %v, want ErrDisconnected", err)
	}
}

func TestSendFDPassesTheSameFile(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "image"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var want unix.Stat_t
	if err := unix.Fstat(int(file.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	c := serve(t, Options{}, func(f *fake, r req) {
		if r.Execute != "getfd" || string(r.Arguments) != `{"fdname":"mig"}` || len(r.fds) != 1 {
			t.Errorf("got %s %s with %d fds", r.Execute, r.Arguments, len(r.fds))
		}
		for _, fd := range r.fds {
			var got unix.Stat_t
			if err := unix.Fstat(fd, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
				t.Errorf("received fd %d: dev %d ino %d (%v), want dev %d ino %d", fd, got.Dev, got.Ino, err, want.Dev, want.Ino)
			}
			unix.Close(fd)
		}
		f.answer(r, "{}")
	})
	if err := c.SendFD(context.Background(), "mig", int(file.Fd())); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationHelpersOnTheWire(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	c := serve(t, Options{}, func(f *fake, r req) {
		mu.Lock()
		got[r.Execute] = string(r.Arguments)
		mu.Unlock()
		ret := "{}"
		if r.Execute == "query-migrate" { // as QEMU 7.2 answers during a migration
			ret = `{"expected-downtime": 300, "status": "active", "setup-time": 2, "total-time": 181,
				"ram": {"total": 268435456, "postcopy-requests": 0, "dirty-sync-count": 2, "multifd-bytes": 0,
				"pages-per-second": 32610, "downtime-bytes": 0, "page-size": 4096, "remaining": 1048576,
				"postcopy-bytes": 0, "mbps": 268.5, "transferred": 6042375, "dirty-sync-missed-zero-copy": 0,
				"precopy-bytes": 6042375, "duplicate": 64034, "dirty-pages-rate": 120, "skipped": 0,
				"normal-bytes": 5873664, "normal": 1434}}`
		}
		f.answer(r, strings.Join(strings.Fields(ret), " "))
	})
	ctx := context.Background()
	limit := int64(100)
	if err := c.MigrateSetParameters(ctx, MigrationParameters{DowntimeLimit: &limit}); err != nil {
		t.Fatal(err)
	}
	if err := c.MigrateSetCapabilities(ctx, map[string]bool{"events": true, "auto-converge": false}); err != nil {
		t.Fatal(err)
	}
	m, err := c.QueryMigrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := MigrationInfo{Status: MigrationActive, TotalTime: 181, ExpectedDowntime: 300, SetupTime: 2,
		RAM: &MigrationRAM{Transferred: 6042375, Remaining: 1048576, Total: 268435456, Duplicate: 64034,
			Normal: 1434, NormalBytes: 5873664, DirtyPagesRate: 120, Mbps: 268.5, DirtySyncCount: 2,
			PageSize: 4096, PagesPerSecond: 32610, PrecopyBytes: 6042375}}
	if m.RAM == nil || *m.RAM != *want.RAM || m.Status != want.Status || m.TotalTime != want.TotalTime ||
		m.ExpectedDowntime != want.ExpectedDowntime || m.SetupTime != want.SetupTime {
		t.Errorf("query-migrate %+v %+v, want %+v %+v", m, m.RAM, want, want.RAM)
	}
	mu.Lock()
	defer mu.Unlock()
	for cmd, args := range map[string]string{
		"migrate-set-parameters":   `{"downtime-limit":100}`,
		"migrate-set-capabilities": `{"capabilities":[{"capability":"auto-converge","state":false},{"capability":"events","state":true}]}`,
		"query-migrate":            "",
	} {
		if got[cmd] != args {
			t.Errorf("%s sent %q, want %q", cmd, got[cmd], args)
		}
	}
}
