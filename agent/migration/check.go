package migration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Options are a migration's settings, as domain.migrate takes them.
type Options struct {
	Live        bool
	RateLimit   int64         // bytes/s, 0 = no cap
	MaxDowntime time.Duration // 0 = the default (300 ms)
	SSL         bool
	Port        int    // 0: 8002, or 8003 with SSL
	User        string // the target agent's API user
	Password    string // its password; never logged
	Fingerprint string // SHA-256 of the target's TLS certificate, hex
	Parallel    int
	// Compress names the page compression ("", "none", "s2", "zstd", "auto").
	Compress string

	// Offline migration of a stopped domain (see offline.go).
	Start      bool   // start the domain on the target afterwards
	Remove     bool   // remove the source copy of the data instead of keeping it renamed
	Force      bool   // skip validation (logged)
	TargetRepo string // UUID of the target repository that receives copied disks ("" = the target chooses)
}

// DefaultMaxDowntime is QEMU's default downtime target.
const DefaultMaxDowntime = 300 * time.Millisecond

// target splits HOST[:PORT], filling the default port.
func target(t string, o Options) (string, error) {
	host, port := t, ""
	if h, p, err := net.SplitHostPort(t); err == nil {
		host, port = h, p
	}
	if host == "" {
		return "", errors.New("no target host")
	}
	if port == "" {
		switch {
		case o.Port > 0:
			port = strconv.Itoa(o.Port)
		case o.SSL:
			port = "8003"
		default:
			port = "8002"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// tlsConfig verifies the target against the pinned fingerprint; without
// one the certificate is not verified (and the status says so).
func tlsConfig(o Options) *tls.Config {
	if !o.SSL {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	if fp := strings.ToLower(strings.ReplaceAll(o.Fingerprint, ":", "")); fp != "" {
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("target sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if hex.EncodeToString(sum[:]) != fp {
				return fmt.Errorf("target certificate sha256 %x does not match the pinned %s", sum, fp)
			}
			return nil
		}
	}
	return c
}

// Local is what the orchestration needs of this agent.
type Local struct {
	Domains      *domains.Manager
	AgentVersion string
	Protocol     int
	// SourceAddr is the address outgoing relocation connections come from
	// ("" lets the kernel choose).
	SourceAddr string
	// ProgressTimeout is [relocation] progress_timeout: the VMM's page
	// stream fails a write that moves no byte for this long (0: no limit).
	ProgressTimeout time.Duration
	// FileRoots returns, per call, the directories a disk copied by an
	// offline migration must resolve in (repositories and [agent]
	// file_dirs); nil refuses every copy.
	FileRoots func() []string

	once sync.Once
	migs *registry
}

func (l *Local) dial(ctx context.Context, addr string, o Options, h *relocation.Hello) (net.Conn, *relocation.Welcome, error) {
	return relocation.Dial(ctx, relocation.DialOptions{Addr: addr, TLS: tlsConfig(o), Source: l.SourceAddr}, h)
}

func (l *Local) hello(op, id string, o Options, offer relocation.Offer) *relocation.Hello {
	host, _ := os.Hostname()
	return &relocation.Hello{
		Op: op, AgentVersion: l.AgentVersion, Protocol: l.Protocol, Source: host,
		Migration: id, User: o.User, Password: o.Password, Live: o.Live, Offer: offer,
	}
}

// Check is the dry run: it moves nothing and returns every reason the
// migration of name to tgt would fail (none: it would work).
func (l *Local) Check(ctx context.Context, name, tgt string, o Options) ([]string, error) {
	in, err := l.Domains.Info(name)
	if err != nil {
		return nil, err
	}
	var problems []string
	switch {
	case in.State == string(domains.Running):
	case in.State == string(domains.Paused) && !o.Live:
	case o.Live:
		problems = append(problems, fmt.Sprintf("state: %s is %s; a live migration needs it running", name, in.State))
	default:
		problems = append(problems, fmt.Sprintf("state: %s is %s; it must be running or paused", name, in.State))
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return nil, err
	}
	addr, err := target(tgt, o)
	if err != nil {
		return append(problems, "target: "+err.Error()), nil
	}
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpCheck, "", o, offer))
	if err != nil {
		return append(problems, "target: "+err.Error()), nil
	}
	if c != nil {
		c.Close()
	}
	if wl.Error != "" {
		problems = append(problems, "target: "+wl.Error)
	}
	return append(problems, wl.Problems...), nil
}

// EstimateWindow is how long the dry run watches the guest's dirty log;
// the link probe takes relocation.DefaultProbeDuration more.
var EstimateWindow = time.Second

// Estimate is the dry run's prediction: what it measured of the guest and
// the link, and what the migration's stop rule would make of it.
type Estimate struct {
	Live bool `xmlrpc:"live"`
	// DirtyRate is the bytes per second of pages the guest dirtied,
	// HotBytes the hot set fitted to how the dirty set grew.
	DirtyRate float64 `xmlrpc:"dirty_rate"`
	HotBytes  int64   `xmlrpc:"hot_bytes"`
	// LinkThroughput is how fast the target took the probe's data, in
	// bytes per second: received and, when TargetMemoryRate is set,
	// written into fresh memory as a migration's receiver does (most of
	// a migration's cost on a fast link). TargetMemoryRate is the rate of
	// those writes alone (0 from an older target, whose figure is the
	// link alone). Bandwidth is what the prediction used (the rate cap
	// when lower, RateLimited then).
	LinkThroughput   float64 `xmlrpc:"link_throughput"`
	TargetMemoryRate float64 `xmlrpc:"target_memory_rate"`
	Bandwidth        float64 `xmlrpc:"bandwidth"`
	RateLimited      bool    `xmlrpc:"rate_limited"`
	// TouchedBytes is the memory holding data (what round 0 sends).
	TouchedBytes int64 `xmlrpc:"touched_bytes"`
	MemoryBytes  int64 `xmlrpc:"memory_bytes"`
	// The prediction. TotalSeconds is the page stream's time (status'
	// transfer_seconds): the target VMM's start and the handshakes come on
	// top. DowntimeMs is the stop-and-copy's transfer of the last dirty
	// pages; the commit and the target's start come on top.
	TotalSeconds     float64 `xmlrpc:"total_seconds"`
	DowntimeMs       float64 `xmlrpc:"downtime_ms"`
	MaxDowntimeMs    float64 `xmlrpc:"max_downtime_ms"` // the target the stop rule aims for
	Rounds           int     `xmlrpc:"rounds"`
	BytesToSend      int64   `xmlrpc:"bytes_to_send"` // page data, all rounds
	StopReason       string  `xmlrpc:"stop_reason"`
	AutoConverge     bool    `xmlrpc:"auto_converge"` // the guest would be throttled
	MaxThrottle      int     `xmlrpc:"max_throttle_percent"`
	ThrottledSeconds float64 `xmlrpc:"throttled_seconds"`
	// MeasuredSeconds is how long measuring took.
	MeasuredSeconds float64 `xmlrpc:"measured_seconds"`
}

// Estimate measures, for a moment, how fast the running domain dirties
// its memory and how fast the link to tgt carries data, and predicts the
// migration with options o by running the stop rule over them. When no
// estimate can be made (the domain does not run, the target refuses the
// probe) it returns nil and says why.
func (l *Local) Estimate(ctx context.Context, name, tgt string, o Options) (*Estimate, string, error) {
	start := time.Now()
	in, err := l.Domains.Info(name)
	if err != nil {
		return nil, "", err
	}
	paused := in.State == string(domains.Paused)
	if in.State != string(domains.Running) && !(paused && !o.Live) {
		return nil, fmt.Sprintf("%s is %s: there is nothing to measure", name, in.State), nil
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return nil, "", err
	}
	addr, err := target(tgt, o)
	if err != nil {
		return nil, "target: " + err.Error(), nil
	}
	// The probe connection first: a target that refuses it costs no
	// measuring. It waits while the guest is measured, so that the two
	// do not compete for the CPU.
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpProbe, "", o, offer))
	if err != nil {
		return nil, "link probe: " + err.Error(), nil
	}
	if c == nil {
		return nil, "link probe: the target refused it: " + wl.Error, nil
	}
	defer c.Close()

	g, err := l.measureGuest(ctx, name)
	if err != nil {
		return nil, "measuring the guest: " + err.Error(), nil
	}
	pr, err := relocation.Probe(ctx, c, relocation.ProbeOptions{})
	if err != nil {
		return nil, err.Error(), nil
	}
	model := pagexfer.DirtyModel{Rate: g.DirtyRate}
	if n := len(g.Samples); n > 0 {
		s := g.Samples[n-1]
		model = pagexfer.FitDirtyModel(g.DirtyRate, s.At, float64(s.Bytes), float64(g.MemoryBytes))
	}
	live := o.Live && !paused
	maxDown := o.MaxDowntime
	if maxDown <= 0 {
		maxDown = DefaultMaxDowntime
	}
	p, err := pagexfer.Predict(pagexfer.PredictInput{
		Options:   pagexfer.Options{Live: live, AlreadyPaused: paused, MaxDowntime: maxDown, RateLimit: float64(o.RateLimit)},
		MemBytes:  g.MemoryBytes,
		Touched:   g.TouchedBytes,
		Bandwidth: pr.Throughput,
		Dirty:     model,
	})
	if err != nil {
		return nil, err.Error(), nil
	}
	return &Estimate{
		Live:             live,
		DirtyRate:        g.DirtyRate,
		HotBytes:         int64(model.Hot),
		LinkThroughput:   pr.Throughput,
		TargetMemoryRate: pr.MemoryWriteRate,
		Bandwidth:        p.Bandwidth,
		RateLimited:      p.Bandwidth < pr.Throughput,
		TouchedBytes:     int64(g.TouchedBytes),
		MemoryBytes:      int64(g.MemoryBytes),
		TotalSeconds:     p.Total.Seconds(),
		DowntimeMs:       float64(p.Downtime) / float64(time.Millisecond),
		MaxDowntimeMs:    float64(maxDown) / float64(time.Millisecond),
		Rounds:           p.Rounds,
		BytesToSend:      int64(p.PageBytes),
		StopReason:       p.Reason.String(),
		AutoConverge:     p.MaxThrottle > 0,
		MaxThrottle:      p.MaxThrottle,
		ThrottledSeconds: p.ThrottledFor.Seconds(),
		MeasuredSeconds:  time.Since(start).Seconds(),
	}, "", nil
}

// measureGuest has the domain's VMM watch its dirty log for EstimateWindow
// and returns the measurement.
func (l *Local) measureGuest(ctx context.Context, name string) (*control.Estimate, error) {
	resp, err := l.Domains.Call(name, control.Request{Op: control.OpEstimate, Window: EstimateWindow}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(EstimateWindow + 10*time.Second)
	for e := resp.Estimate; ; e = resp.Estimate {
		switch {
		case e == nil:
			return nil, errors.New("the VMM answered without an estimate")
		case e.Done && e.Error != "":
			return nil, errors.New(e.Error)
		case e.Done:
			return e, nil
		case time.Now().After(deadline):
			return nil, fmt.Errorf("the VMM did not finish within %v", EstimateWindow+10*time.Second)
		}
		wait := min(max(EstimateWindow-e.Window, 0)+20*time.Millisecond, time.Second)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if resp, err = l.Domains.Call(name, control.Request{Op: control.OpEstimate}, 5*time.Second); err != nil {
			return nil, err
		}
	}
}
