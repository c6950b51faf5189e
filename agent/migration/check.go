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
