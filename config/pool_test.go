package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePool(t *testing.T) {
	c, err := Parse(testINI, []byte(`[pool]
name = pool-1
host_name = node-2
endpoints = https://10.1.1.5:2379,https://10.1.1.6:2379 , https://etcd3.example.org:2379
lease_ttl = 20s
fencing_margin = 4s
dial_timeout = 2s
ca_file = /etc/ovs-agent/etcd-ca.pem
cert_file = /etc/ovs-agent/etcd.pem
key_file = /etc/ovs-agent/etcd.key
drain_on_stop = no
drain_timeout = 90s
user = agent
password_file = /etc/ovs-agent/etcd.password
`))
	if err != nil {
		t.Fatal(err)
	}
	want := PoolConfig{
		Name:          "pool-1",
		HostName:      "node-2",
		Endpoints:     []string{"https://10.1.1.5:2379", "https://10.1.1.6:2379", "https://etcd3.example.org:2379"},
		LeaseTTL:      20 * time.Second,
		FencingMargin: 4 * time.Second,
		DialTimeout:   2 * time.Second,
		CAFile:        "/etc/ovs-agent/etcd-ca.pem",
		CertFile:      "/etc/ovs-agent/etcd.pem",
		KeyFile:       "/etc/ovs-agent/etcd.key",
		User:          "agent",
		PasswordFile:  "/etc/ovs-agent/etcd.password",
		DrainTimeout:  90 * time.Second,
	}
	if !reflect.DeepEqual(c.Pool, want) {
		t.Errorf("Pool =\n%+v\nwant\n%+v", c.Pool, want)
	}
	if got, _ := c.Value("pool", "endpoints"); got != "https://10.1.1.5:2379, https://10.1.1.6:2379, https://etcd3.example.org:2379" {
		t.Errorf("Value(endpoints) = %q", got)
	}
	if got := c.Where("pool", "lease_ttl"); got != testINI+":5" {
		t.Errorf("Where(lease_ttl) = %q", got)
	}
	if _, err := Parse(testINI, []byte("[pool]\nname = p\nendpoints = http://127.0.0.1:2379\nhost_name = a b\n")); err == nil ||
		err.Error() != `/etc/ovs-agent/agent.ini:4: [pool] host_name: "a b" is not a valid member name (1-128 of letters, digits, '.', '_', '-', starting with a letter or digit)` {
		t.Errorf("bad host_name: %v", err)
	}
}

// Without [pool] the agent is in no pool; the defaults say so.
func TestPoolDefaults(t *testing.T) {
	c, err := Parse(testINI, []byte("[pool]\nname =\nlease_ttl = 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := PoolConfig{LeaseTTL: 10 * time.Second, FencingMargin: 3 * time.Second, DialTimeout: 5 * time.Second, DrainOnStop: true, DrainTimeout: 5 * time.Minute}
	if !reflect.DeepEqual(c.Pool, want) {
		t.Errorf("Pool = %+v, want %+v", c.Pool, want)
	}
	// The smallest pool: a name and one endpoint.
	c, err = Parse(testINI, []byte("[pool]\nname = p\nendpoints = http://127.0.0.1:2379\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool.Name != "p" || len(c.Pool.Endpoints) != 1 || c.Pool.LeaseTTL != 10*time.Second {
		t.Errorf("Pool = %+v", c.Pool)
	}
}

func TestParsePoolErrors(t *testing.T) {
	const pool = "[pool]\nname = p\nendpoints = http://127.0.0.1:2379\n"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"bad name", "[pool]\nname = my pool\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] name: "my pool" is not a valid pool name (1-64 of letters, digits, '.', '_', '-', starting with a letter or digit)`}},
		{"name with slash", "[pool]\nname = a/b\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] name: "a/b" is not a valid pool name (1-64 of letters, digits, '.', '_', '-', starting with a letter or digit)`}},
		{"no endpoints", "[pool]\nname = p\n", []string{
			`/etc/ovs-agent/agent.ini: [pool] endpoints (default): must not be empty when [pool] name is set: give the etcd cluster's client URLs, comma-separated`}},
		{"endpoint without port", "[pool]\nendpoints = http://127.0.0.1\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: "http://127.0.0.1" has no host:port (etcd's client port is usually 2379)`}},
		{"endpoint without scheme", "[pool]\nendpoints = 127.0.0.1:2379\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: "127.0.0.1:2379": an etcd endpoint is http://host:port or https://host:port`}},
		{"endpoint with credentials", "[pool]\nendpoints = http://root:pw@127.0.0.1:2379\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: "http://root:pw@127.0.0.1:2379": an etcd endpoint is only scheme://host:port (credentials go in [pool] user and password_file)`}},
		{"stray comma", "[pool]\nendpoints = http://127.0.0.1:2379,\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: endpoint 2 is empty (a stray comma?)`}},
		{"mixed schemes", "[pool]\nendpoints = http://127.0.0.1:2379, https://127.0.0.2:2379\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: "https://127.0.0.2:2379" is https:// but an earlier endpoint is http://; give every member of the etcd cluster the same scheme`}},
		{"ttl too short", pool + "lease_ttl = 1s\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] lease_ttl: 1s is out of range (2s-5m)`}},
		{"ttl too long", pool + "lease_ttl = 1h\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] lease_ttl: 1h is out of range (2s-5m)`}},
		{"ttl not whole seconds", pool + "lease_ttl = 2500ms\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] lease_ttl: 2.5s is not a whole number of seconds (etcd grants leases in seconds)`}},
		{"margin not below ttl", pool + "lease_ttl = 4s\nfencing_margin = 4s\n", []string{
			`/etc/ovs-agent/agent.ini:5: [pool] fencing_margin: 4s is more than half of lease_ttl (4s, /etc/ovs-agent/agent.ini:4): the lease is renewed every third of its TTL, so a larger margin would stop guests between two renewals`}},
		{"margin over half the default ttl", pool + "fencing_margin = 6s\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] fencing_margin: 6s is more than half of lease_ttl (10s, default): the lease is renewed every third of its TTL, so a larger margin would stop guests between two renewals`}},
		{"margin too small", pool + "fencing_margin = 100ms\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] fencing_margin: 100ms is out of range (500ms-2m30s)`}},
		{"dial timeout", pool + "dial_timeout = 0s\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] dial_timeout: 0s is out of range (100ms-1m)`}},
		{"drain timeout", pool + "drain_timeout = 2s\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] drain_timeout: 2s is out of range (10s-1h)`}},
		{"drain not a boolean", pool + "drain_on_stop = maybe\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] drain_on_stop: "maybe" is not a boolean (yes/no, true/false, on/off, 1/0)`}},
		{"relative ca", pool + "ca_file = ca.pem\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] ca_file: "ca.pem" is not an absolute path`}},
		{"cert without key", "[pool]\nname = p\nendpoints = https://127.0.0.1:2379\ncert_file = /etc/c.pem\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] cert_file: set without key_file; set both or neither`}},
		{"key without cert", "[pool]\nname = p\nendpoints = https://127.0.0.1:2379\nkey_file = /etc/k.pem\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] key_file: set without cert_file; set both or neither`}},
		{"tls files with http", pool + "ca_file = /etc/ca.pem\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] ca_file: set, but the endpoints are http:// (no TLS); use https:// endpoints or remove ca_file`}},
		{"bad user", pool + "user = a b\npassword_file = /etc/pw\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] user: "a b" is not a valid user name (1-64 of letters, digits, '.', '_', '@', '-', starting with a letter or digit)`}},
		{"user without password", pool + "user = agent\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] user: set without password_file; set both or neither`}},
		{"password without user", pool + "password_file = /etc/pw\n", []string{
			`/etc/ovs-agent/agent.ini:4: [pool] password_file: set without user; set both or neither`}},
		{"pool options without a pool", "[pool]\nendpoints = http://127.0.0.1:2379\nlease_ttl = 20s\n", []string{
			`/etc/ovs-agent/agent.ini:2: [pool] endpoints: set, but [pool] name is empty, so the agent is in no pool; set name or remove endpoints`,
			`/etc/ovs-agent/agent.ini:3: [pool] lease_ttl: set, but [pool] name is empty, so the agent is in no pool; set name or remove lease_ttl`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(testINI, []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c.Pool)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Validate applies the same rules to a Config changed in code.
func TestValidatePool(t *testing.T) {
	c := Default()
	c.Pool.Name = "p"
	c.Pool.Endpoints = []string{"http://127.0.0.1:2379"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Pool.LeaseTTL = 3 * time.Second
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "[pool] fencing_margin (default): 3s is more than half of lease_ttl (3s, default)") {
		t.Errorf("Validate = %v", err)
	}
	c.Pool.LeaseTTL = 1500 * time.Millisecond
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "[pool] lease_ttl (default): 1.5s is out of range (2s-5m)") {
		t.Errorf("Validate = %v", err)
	}
}
