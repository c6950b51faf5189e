package pool

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/internal/passwordfile"
)

// Settings are what a Member needs to join a pool.
type Settings struct {
	Pool          string        // the pool's name
	LeaseTTL      time.Duration // whole seconds
	FencingMargin time.Duration // kept for the layers that fence guests; < LeaseTTL
	// Client is the etcd client's configuration: endpoints, TLS,
	// credentials, dial timeout. Join sets its Logger if nil.
	Client clientv3.Config
	// Resume, when set, is the lease of this member's previous run (an
	// agent restarted, or killed and started again): Join takes it up if
	// it is still alive, with the keys bound to it (member record,
	// election key, domain owner keys), instead of granting a new one.
	Resume clientv3.LeaseID
	// OnRenew, when set, is called by the Member's keep-alive loop with
	// the new deadline after every acknowledged renewal (and once after
	// Join). It must not block.
	OnRenew func(deadline time.Time)
}

// maxPEM bounds a CA bundle, certificate or key file.
const maxPEM = 1 << 20

// SettingsFrom builds Settings out of [pool], reading the TLS files and
// the password file. Its errors name the option (and the agent.ini line)
// whose file could not be used. It is an error to call it without a pool
// name.
func SettingsFrom(c *config.Config) (Settings, error) {
	p := c.Pool
	if p.Name == "" {
		return Settings{}, config.OptionError(c, "pool", "name", errors.New("empty: the agent is in no pool"))
	}
	s := Settings{
		Pool:          p.Name,
		LeaseTTL:      p.LeaseTTL,
		FencingMargin: p.FencingMargin,
		Client: clientv3.Config{
			Endpoints:   append([]string(nil), p.Endpoints...),
			DialTimeout: p.DialTimeout,
			// Find a dead connection within about a lease TTL. (gRPC
			// raises keep-alive times below 10s to 10s.)
			DialKeepAliveTime:    p.LeaseTTL,
			DialKeepAliveTimeout: p.LeaseTTL / 3,
			PermitWithoutStream:  true,
		},
	}
	if len(p.Endpoints) > 0 && strings.HasPrefix(p.Endpoints[0], "https://") {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.CAFile != "" {
			pem, err := boundedfile.ReadFile(p.CAFile, maxPEM, boundedfile.Follow)
			if err != nil {
				return Settings{}, config.OptionError(c, "pool", "ca_file", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return Settings{}, config.OptionError(c, "pool", "ca_file", fmt.Errorf("%s holds no PEM certificate", p.CAFile))
			}
			t.RootCAs = roots
		}
		if p.CertFile != "" {
			certPEM, err := boundedfile.ReadFile(p.CertFile, maxPEM, boundedfile.Follow)
			if err != nil {
				return Settings{}, config.OptionError(c, "pool", "cert_file", err)
			}
			keyPEM, err := boundedfile.ReadFile(p.KeyFile, maxPEM, boundedfile.Follow)
			if err != nil {
				return Settings{}, config.OptionError(c, "pool", "key_file", err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return Settings{}, config.OptionError(c, "pool", "cert_file", fmt.Errorf("%s with %s: %w", p.CertFile, p.KeyFile, err))
			}
			t.Certificates = []tls.Certificate{pair}
		}
		s.Client.TLS = t
	}
	if p.User != "" {
		pw, err := passwordfile.Read(p.PasswordFile)
		if err != nil {
			return Settings{}, config.OptionError(c, "pool", "password_file", err)
		}
		if pw == "" {
			return Settings{}, config.OptionError(c, "pool", "password_file", fmt.Errorf("%s: the first line is empty; etcd users have a password", p.PasswordFile))
		}
		s.Client.Username, s.Client.Password = p.User, pw
	}
	return s, nil
}
