package pagexfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func testOptions(live bool) Options {
	return Options{Live: live, Engine: "test", VCPUs: 2, Config: "name='t'"}
}

// countingSink counts the data writes of every page.
type countingSink struct {
	*memSink
	sent []int
}

func (c *countingSink) WriteAt(p []byte, off int64) (int, error) {
	n, err := c.memSink.WriteAt(p, off)
	for i := 0; i < n/PageSize; i++ {
		c.sent[int(off)/PageSize+i]++
	}
	return n, err
}

func receiveInto(t *testing.T, b []byte) (*countingSink, Header, []byte, Stats) {
	t.Helper()
	var sink *countingSink
	h, state, st, err := Receive(context.Background(), bytes.NewReader(b), func(h Header) (Sink, error) {
		sink = &countingSink{memSink: newMemSink(h.MemSize, int(h.PageSize)), sent: make([]int, h.Pages())}
		return sink, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sink.bad != nil {
		t.Fatal(sink.bad)
	}
	return sink, h, state, st
}

// checkReadsPopulated fails when Send read a page the source never populated.
func checkReadsPopulated(t *testing.T, m *memSource) {
	t.Helper()
	for _, r := range m.reads {
		for p := r[0] / PageSize; p < (r[0]+r[1])/PageSize; p++ {
			if !m.populated[p] {
				t.Fatalf("read of page %d, which was never populated", p)
			}
		}
	}
}

func TestSendNonLive(t *testing.T) {
	m := newMemSource(4096)
	for p := 100; p < 400; p++ {
		m.write(p, 0xa5)
	}
	for p := 400; p < 450; p++ {
		m.write(p, 0) // populated but zero: sent as flags
	}
	m.write(4095, 7)
	var buf bytes.Buffer
	var reports []Progress
	res, err := SaveTo(context.Background(), m, &buf, testOptions(true), func(p Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Live || res.Reason != StopNotLive || res.Rounds() != 1 || m.pauses != 1 || m.resumes != 0 || m.logging {
		t.Fatalf("result %+v; pauses %d resumes %d logging %v", res, m.pauses, m.resumes, m.logging)
	}
	want := Totals{Rounds: 1, DataPages: 301, ZeroPages: 50}
	if res.Totals.Rounds != want.Rounds || res.Totals.DataPages != want.DataPages || res.Totals.ZeroPages != want.ZeroPages {
		t.Fatalf("totals %+v, want %+v", res.Totals, want)
	}
	if res.BytesSent != uint64(buf.Len()) || res.Totals.Bytes != uint64(buf.Len()-frameSize-endBody) {
		t.Fatalf("bytes sent %d, totals %d, stream %d", res.BytesSent, res.Totals.Bytes, buf.Len())
	}
	if res.BytesRead != 351*PageSize {
		t.Fatalf("read %d bytes, want only the %d populated", res.BytesRead, 351*PageSize)
	}
	checkReadsPopulated(t, m)
	if res.Downtime <= 0 || res.Downtime > res.Total {
		t.Fatalf("downtime %v of total %v", res.Downtime, res.Total)
	}
	sink, h, state, st := receiveInto(t, buf.Bytes())
	if st.Totals != res.Totals || string(state) != "vcpu-state" || h.ID != res.ID || h.Engine != "test" || h.VCPUs != 2 || h.Config != "name='t'" {
		t.Fatalf("received %+v %q %+v; sent %+v", h, state, st, res)
	}
	if !bytes.Equal(sink.mem, m.mem) {
		t.Fatal("received memory differs")
	}
	if sink.zeroWrites != 0 || sink.dataWrites != 301 || st.ZeroedPages != 0 {
		t.Fatalf("%d zero pages written as data, %d data pages, %d zeroed", sink.zeroWrites, sink.dataWrites, st.ZeroedPages)
	}
	if len(reports) < 2 || reports[len(reports)-1].Phase != PhaseDone || reports[len(reports)-1].BytesSent != res.BytesSent {
		t.Fatalf("progress reports %+v", reports)
	}
}

func TestSendAlreadyPaused(t *testing.T) {
	m := newMemSource(64)
	m.write(3, 1)
	m.paused = true
	var buf bytes.Buffer
	o := testOptions(true)
	o.AlreadyPaused = true
	res, err := Send(context.Background(), m, &buf, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.pauses != 0 || m.resumes != 0 || res.Live || res.Rounds() != 1 {
		t.Fatalf("pauses %d resumes %d result %+v", m.pauses, m.resumes, res)
	}
	m.failState = errors.New("no state")
	if _, err := Send(context.Background(), m, io.Discard, o, nil); err == nil || m.resumes != 0 {
		t.Fatalf("failed send of a paused source: %v, %d resumes (must stay paused)", err, m.resumes)
	}
}

// TestSendSkipsRedirtied checks xend's rule: a page dirtied again during
// the round that was about to send it is skipped and sent once, later; a
// page dirtied after it was sent is sent again.
func TestSendSkipsRedirtied(t *testing.T) {
	defer func(d time.Duration) { fetchEvery = d }(fetchEvery)
	fetchEvery = 0
	m := newMemSource(2048)
	for p := 0; p < 2048; p++ {
		m.write(p, 0x11)
	}
	first := true
	m.onRead = func(m *memSource) {
		if !first {
			return
		}
		first = false
		for p := 10; p < 20; p++ { // already read: must be sent again
			m.write(p, 0x22)
		}
		for p := 1500; p < 1600; p++ { // not read yet: skipped, sent once
			m.write(p, 0x33)
		}
	}
	var buf bytes.Buffer
	res, err := Send(context.Background(), m, &buf, testOptions(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.SkippedPages != 100 || res.Rounds() != 2 || res.Reason != StopDowntime {
		t.Fatalf("result %+v", res)
	}
	sink, _, _, _ := receiveInto(t, buf.Bytes())
	for p, n := range sink.sent {
		want := 1
		if p >= 10 && p < 20 {
			want = 2
		}
		if n != want {
			t.Fatalf("page %d sent %d times, want %d", p, n, want)
		}
	}
	if !bytes.Equal(sink.mem, m.mem) {
		t.Fatal("received memory differs")
	}
	// The source stays paused with its dirty log on (turning it off
	// would lengthen the pause) until the caller resumes it.
	if !m.logging || !res.DirtyLogging || m.pauses != 1 || m.resumes != 0 {
		t.Fatalf("logging %v (result says %v) pauses %d resumes %d", m.logging, res.DirtyLogging, m.pauses, m.resumes)
	}
	if err := ResumeSource(m, res); err != nil {
		t.Fatal(err)
	}
	if m.logging || m.resumes != 1 {
		t.Fatalf("after ResumeSource: logging %v resumes %d", m.logging, m.resumes)
	}
}

// TestSendLive runs a source that keeps writing random pages while it is
// copied; the image must equal memory at the moment of the pause.
func TestSendLive(t *testing.T) {
	m := newMemSource(8192)
	rng := rand.New(rand.NewPCG(5, 6))
	for p := 0; p < 6000; p++ {
		m.write(p, byte(1+p%200))
	}
	reads := 0
	m.onRead = func(m *memSource) {
		reads++
		if reads > 40 {
			return // settles, so the stop rule can fire
		}
		for i := 0; i < 300; i++ {
			p := rng.IntN(8192)
			b := byte(rng.IntN(4)) // zero now and then, on fresh pages too
			m.write(p, b)
		}
	}
	var buf bytes.Buffer
	var reports []Progress
	o := testOptions(true)
	o.RateLimit = 256 << 20
	o.MaxDowntime = time.Millisecond
	res, err := Send(context.Background(), m, &buf, o, func(p Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Rounds() < 3 || !res.Live || res.Reason != StopDowntime {
		t.Fatalf("result %+v", res)
	}
	checkReadsPopulated(t, m)
	sink, _, _, st := receiveInto(t, buf.Bytes())
	if !bytes.Equal(sink.mem, m.snapshot()) {
		t.Fatal("received memory differs from the source at pause")
	}
	if sink.zeroWrites != 0 || st.ZeroedPages == 0 {
		t.Fatalf("%d zero pages written as data; %d pages zeroed", sink.zeroWrites, st.ZeroedPages)
	}
	checkMonotonic(t, reports)
}

func checkMonotonic(t *testing.T, reports []Progress) {
	t.Helper()
	for i := 1; i < len(reports); i++ {
		a, b := reports[i-1], reports[i]
		if b.BytesSent < a.BytesSent || b.Round < a.Round || b.Phase < a.Phase || b.DataPages < a.DataPages ||
			b.ZeroPages < a.ZeroPages || b.SkippedPages < a.SkippedPages || b.Elapsed < a.Elapsed {
			t.Fatalf("progress went backwards: %+v then %+v", a, b)
		}
	}
	if len(reports) == 0 || reports[len(reports)-1].Phase != PhaseDone || reports[len(reports)-1].BytesRemaining != 0 {
		t.Fatalf("last report %+v", reports[len(reports)-1])
	}
}

// TestSendAutoConverge: a source whose write rate outruns the (capped)
// link is throttled step by step until pre-copy converges, and released
// at the end.
func TestSendAutoConverge(t *testing.T) {
	m := newMemSource(2048)
	for p := 0; p < 2048; p++ {
		m.write(p, 1)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	// The guest writes 16000 pages/s (twice what the 32 MiB/s link
	// carries) while unthrottled, and proportionally less throttled.
	last, owed := time.Now(), 0.0
	m.onRead = func(m *memSource) {
		now := time.Now()
		owed += now.Sub(last).Seconds() * 16000 * float64(100-m.throttle) / 100
		last = now
		for ; owed >= 1; owed-- {
			m.write(rng.IntN(2048), byte(2+rng.IntN(200)))
		}
	}
	o := testOptions(true)
	o.RateLimit = 32 << 20
	o.ThrottleAfter = 1
	o.MaxDowntime = 20 * time.Millisecond
	o.MaxFactor = 50 // a 4 MiB guest reaches xend's 3x within a few rounds
	var buf bytes.Buffer
	res, err := Send(context.Background(), m, &buf, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	th := m.throttles
	if len(th) < 2 || th[len(th)-1] != 0 || !slices.IsSorted(th[:len(th)-1]) || th[0] != 20 {
		t.Fatalf("throttle calls %v", th)
	}
	for _, p := range th[:len(th)-1] {
		if !slices.Contains(DefaultThrottleSteps, p) {
			t.Fatalf("throttle %d is not a step (%v)", p, th)
		}
	}
	r := res.Throttle
	if r.Max != th[len(th)-2] || len(r.Steps) != len(th) || r.Duration <= 0 || r.CPUTaken <= 0 || r.CPUTaken > r.Duration {
		t.Fatalf("throttle report %+v for calls %v", r, th)
	}
	if res.Reason != StopDowntime {
		t.Fatalf("did not converge: %+v", res)
	}
	sink, _, _, _ := receiveInto(t, buf.Bytes())
	if !bytes.Equal(sink.mem, m.snapshot()) {
		t.Fatal("received memory differs")
	}
}

type failWriter struct {
	n   int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, w.err
	}
	w.n--
	return len(p), nil
}

func TestSendFailureCleanup(t *testing.T) {
	tests := []struct {
		name    string
		live    bool
		setup   func(m *memSource, cancel context.CancelFunc) io.Writer
		want    string
		paused  bool // Send had paused the source when it failed
		isCause error
	}{
		{"read error live", true, func(m *memSource, _ context.CancelFunc) io.Writer {
			m.readErr = errors.New("EIO")
			return io.Discard
		}, "EIO", false, nil},
		{"read error non-live", false, func(m *memSource, _ context.CancelFunc) io.Writer {
			m.readErr = errors.New("EIO")
			return io.Discard
		}, "EIO", true, nil},
		{"state error live", true, func(m *memSource, _ context.CancelFunc) io.Writer {
			m.failState = errors.New("vcpu gone")
			return io.Discard
		}, "vcpu gone", true, nil},
		{"write error", true, func(m *memSource, _ context.CancelFunc) io.Writer {
			return &failWriter{n: 2, err: errors.New("connection reset")}
		}, "connection reset", false, nil},
		{"cancel in round", true, func(m *memSource, cancel context.CancelFunc) io.Writer {
			m.onRead = func(*memSource) { cancel() }
			return io.Discard
		}, "canceled", false, context.Canceled},
		{"cancel while paused", true, func(m *memSource, cancel context.CancelFunc) io.Writer {
			m.onRead = nil
			return &cancelOnState{m: m, cancel: cancel}
		}, "canceled", true, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemSource(4096)
			for p := 0; p < 4096; p++ {
				m.write(p, 3)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := tc.setup(m, cancel)
			o := testOptions(tc.live)
			o.ThrottleSteps = []int{50}
			_, err := Send(ctx, m, w, o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.isCause != nil && !errors.Is(err, tc.isCause) {
				t.Fatalf("error %v is not %v", err, tc.isCause)
			}
			if m.logging || m.throttle != 0 || m.paused {
				t.Fatalf("after failure: logging %v throttle %d paused %v", m.logging, m.throttle, m.paused)
			}
			wantPauses := 0
			if tc.paused {
				wantPauses = 1
			}
			if m.pauses != wantPauses || m.resumes != wantPauses {
				t.Fatalf("pauses %d resumes %d, want %d each", m.pauses, m.resumes, wantPauses)
			}
		})
	}
}

// cancelOnState cancels when the state record goes by (the source is
// paused then).
type cancelOnState struct {
	m      *memSource
	cancel context.CancelFunc
}

func (c *cancelOnState) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == recState && c.m.paused {
		c.cancel()
	}
	return len(p), nil
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"negative downtime", func(o *Options) { o.MaxDowntime = -1 }, "max downtime"},
		{"one round live", func(o *Options) { o.MaxRounds = 1 }, "max rounds"},
		{"negative rounds", func(o *Options) { o.MaxRounds = -3 }, "max rounds"},
		{"negative factor", func(o *Options) { o.MaxFactor = -1 }, "max factor"},
		{"negative rate", func(o *Options) { o.RateLimit = -5 }, "rate limit"},
		{"tiny rate", func(o *Options) { o.RateLimit = 10 }, "below 1 KiB/s"},
		{"negative trigger", func(o *Options) { o.ThrottleTrigger = -0.5 }, "throttle trigger"},
		{"negative after", func(o *Options) { o.ThrottleAfter = -1 }, "throttle after"},
		{"steps not increasing", func(o *Options) { o.ThrottleSteps = []int{20, 20} }, "throttle steps"},
		{"step 100", func(o *Options) { o.ThrottleSteps = []int{100} }, "throttle steps"},
		{"no vcpus", func(o *Options) { o.VCPUs = 0 }, "vCPUs"},
		{"no engine", func(o *Options) { o.Engine = "" }, "engine"},
		{"huge config", func(o *Options) { o.Config = strings.Repeat("x", MaxConfigSize+1) }, "configuration"},
		{"negative interval", func(o *Options) { o.ProgressInterval = -1 }, "progress interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemSource(16)
			o := testOptions(true)
			tc.mod(&o)
			_, err := Send(context.Background(), m, io.Discard, o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if m.pauses != 0 || m.logging {
				t.Fatal("source touched despite bad options")
			}
		})
	}
	if _, err := Send(context.Background(), &memSource{}, io.Discard, testOptions(true), nil); err == nil {
		t.Fatal("empty memory accepted")
	}
}

func TestPolicy(t *testing.T) {
	const MB = 1 << 20
	sec := time.Second
	type step struct {
		r    roundReport
		stop bool
		why  StopReason
		thr  int
	}
	tests := []struct {
		name  string
		o     Options
		steps []step
	}{
		{"converges at once", Options{}, []step{
			{roundReport{0, sec, 1000 * MB, 100 * MB, 1000 * MB, 0}, true, StopDowntime, -1},
		}},
		{"needs a second round", Options{}, []step{
			{roundReport{0, sec, 1000 * MB, 400 * MB, 1000 * MB, 0}, false, 0, -1},
			{roundReport{1, sec / 2, 400 * MB, 20 * MB, 1400 * MB, 0}, true, StopDowntime, -1},
		}},
		{"small round keeps the estimate", Options{}, []step{
			{roundReport{0, sec, 100 * MB, 40 * MB, 100 * MB, 0}, false, 0, -1},
			{roundReport{1, sec, MB / 2, 29 * MB, 101 * MB, 0}, true, StopDowntime, -1}, // 29 MB at 100 MB/s: 290 ms
		}},
		{"round backstop", Options{MaxRounds: 3}, []step{
			{roundReport{0, sec, 100 * MB, 90 * MB, 100 * MB, 0}, false, 0, -1},
			{roundReport{1, sec, 100 * MB, 90 * MB, 200 * MB, 0}, true, StopMaxRounds, -1},
		}},
		{"data backstop", Options{MaxFactor: 1.5, DisableAutoConverge: true}, []step{
			{roundReport{0, sec, 100 * MB, 90 * MB, 100 * MB, 0}, false, 0, -1},
			{roundReport{1, sec, 100 * MB, 90 * MB, 1500 * MB, 0}, true, StopMaxFactor, -1},
		}},
		{"throttle steps every two outrun rounds", Options{}, []step{
			{roundReport{0, sec, 100 * MB, 80 * MB, 100 * MB, 0}, false, 0, -1},
			{roundReport{1, sec, 100 * MB, 80 * MB, 200 * MB, 0}, false, 0, 20},
			{roundReport{2, sec, 100 * MB, 40 * MB, 300 * MB, 0}, false, 0, -1}, // 40 MB/s is not above half of 100
			{roundReport{3, sec, 100 * MB, 60 * MB, 400 * MB, 0}, false, 0, -1},
			{roundReport{4, sec, 100 * MB, 60 * MB, 500 * MB, 0}, false, 0, 40},
			{roundReport{5, sec, 100 * MB, 60 * MB, 600 * MB, 0}, false, 0, -1},
			{roundReport{6, sec, 100 * MB, 60 * MB, 700 * MB, 0}, false, 0, 60},
		}},
		{"steps run out", Options{ThrottleAfter: 1, ThrottleSteps: []int{50, 99}}, []step{
			{roundReport{0, sec, 100 * MB, 80 * MB, 100 * MB, 0}, false, 0, 50},
			{roundReport{1, sec, 100 * MB, 80 * MB, 200 * MB, 0}, false, 0, 99},
			{roundReport{2, sec, 100 * MB, 80 * MB, 300 * MB, 0}, false, 0, -1},
		}},
		{"no auto-converge", Options{DisableAutoConverge: true, ThrottleAfter: 1}, []step{
			{roundReport{0, sec, 100 * MB, 80 * MB, 100 * MB, 0}, false, 0, -1},
		}},
		{"dirty rate over the window", Options{ThrottleAfter: 1}, []step{
			// 60 MB in a 1 s round is outrun, but not when it piled up over 2 s.
			{roundReport{0, sec, 100 * MB, 60 * MB, 100 * MB, 2 * sec}, false, 0, -1},
			{roundReport{1, sec, 100 * MB, 60 * MB, 200 * MB, sec}, false, 0, 20},
		}},
		{"nothing dirty", Options{}, []step{
			{roundReport{0, 0, 0, 0, 0, 0}, true, StopDowntime, -1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Engine, o.VCPUs, o.Live = "x", 1, true
			o, err := o.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			p := newPolicy(o, 1000*MB)
			for i, s := range tc.steps {
				v := p.next(s.r)
				if v.Stop != s.stop || v.Stop && v.Reason != s.why || v.Throttle != s.thr {
					t.Fatalf("step %d: verdict %+v, want stop=%v (%v) throttle %d", i, v, s.stop, s.why, s.thr)
				}
			}
		})
	}
	if expected(0, 0) != 0 || expected(1, 0) <= time.Hour || expected(100, 100) != time.Second {
		t.Fatal("expected()")
	}
	if StopMaxFactor.String() == "" || PhaseStopCopy.String() != "stop-copy" || StopReason(9).String() != "StopReason(9)" || Phase(9).String() != "Phase(9)" {
		t.Fatal("String methods")
	}
}

// TestRateLimiter checks how the stream writer applies the cap, nothing of
// which depends on the machine's speed (the rate achieved against the cap is
// BenchmarkRateLimiter's figure): it writes in chunks no larger than the
// limiter's bucket, it charges the limiter for every byte, and the streams
// of one image share one budget. At 1 B/s the bucket (one page) lets one
// chunk through, and the next would wait over an hour, past the context's
// deadline, so the limiter refuses it at once instead of letting it pass.
func TestRateLimiter(t *testing.T) {
	const record = 64 << 10
	bucket := limiterBurst(1)
	writes, errs := writeThroughLimiter(t, nil, 1, record)
	if !slices.Equal(writes, []int{record}) || errs[0] != nil {
		t.Fatalf("uncapped: writes %v, error %v; want one write of %d", writes, errs[0], record)
	}
	writes, errs = writeThroughLimiter(t, newLimiter(1), 1, record)
	if !slices.Equal(writes, []int{bucket}) || errs[0] == nil || !strings.Contains(errs[0].Error(), "rate limit") {
		t.Fatalf("capped: writes %v, error %v; want one write of the %d-byte bucket, then a rate limit error", writes, errs[0], bucket)
	}
	writes, errs = writeThroughLimiter(t, newLimiter(1), 2, record)
	if !slices.Equal(writes, []int{bucket}) {
		t.Fatalf("two streams sharing the cap wrote %v; want one write of the %d-byte bucket between them", writes, bucket)
	}
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("stream %d of 2 sharing the cap: error %v, want a rate limit error", i, err)
		}
	}
}

// writeThroughLimiter puts one record of size bytes on each of n stream
// writers sharing lim (nil: no cap), under a context whose deadline is an
// hour away, and returns the sizes of the writes that reached the
// connections and each writer's error.
func writeThroughLimiter(t *testing.T, lim *rate.Limiter, n, size int) ([]int, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var mu sync.Mutex
	var writes []int
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		writes = append(writes, len(p))
		mu.Unlock()
		return len(p), nil
	})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			sw := newStreamWriter(ctx, w, lim, nil, 1, size)
			defer sw.close(true)
			b, err := sw.get()
			if err == nil {
				err = sw.put(b, b)
			}
			if err == nil {
				err = sw.flush()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return writes, errs
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
