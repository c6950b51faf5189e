package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// Config is the agent's configuration, one field per agent.ini option.
// The ini tags name the section (on the section fields) and the key.
type Config struct {
	Server     ServerConfig     `ini:"server"`
	Auth       AuthConfig       `ini:"auth"`
	Access     AccessConfig     `ini:"access"`
	Log        LogConfig        `ini:"log"`
	Agent      AgentConfig      `ini:"agent"`
	QEMU       QEMUConfig       `ini:"qemu"`
	Relocation RelocationConfig `ini:"relocation"`
	Repository RepositoryConfig `ini:"repository"`
	Pool       PoolConfig       `ini:"pool"`
	Metrics    MetricsConfig    `ini:"metrics"`

	file     string            // agent.ini name given to Parse, "" for Default
	xendFile string            // the xend-config.sxp that was imported, if any
	origins  map[string]origin // "section.key" -> where the value came from
}

// ServerConfig is [server]: the XML-RPC API listeners.
type ServerConfig struct {
	TCPServer       bool          `ini:"tcp_server"`        // serve the API over TCP
	ListenAddress   string        `ini:"listen_address"`    // "", 0.0.0.0 or :: = every address
	Port            int           `ini:"port"`              // API TCP port
	SSL             bool          `ini:"ssl"`               // TLS on the TCP listener
	SSLCert         string        `ini:"ssl_cert"`          // "" = self-signed pair under state_dir/tls
	SSLKey          string        `ini:"ssl_key"`           // set together with SSLCert
	UnixServer      bool          `ini:"unix_server"`       // serve the API on UnixSocket (root only)
	UnixSocket      string        `ini:"unix_socket"`       // path of the local socket
	MaxRequestBytes int64         `ini:"max_request_bytes"` // largest accepted request body
	ReadTimeout     time.Duration `ini:"read_timeout"`      // time to read one whole request
	// HeaderTimeout is the time a client has to send a request's headers.
	HeaderTimeout time.Duration `ini:"header_timeout"`
	// MaxPending caps the connections, on each TCP listener, that have
	// not yet made an authenticated request; MaxPendingPerAddress caps
	// them per client address.
	MaxPending           int64 `ini:"max_pending_connections"`
	MaxPendingPerAddress int64 `ini:"max_pending_per_address"`
}

// AuthConfig is [auth]: who may call the API over TCP.
type AuthConfig struct {
	User             string        `ini:"user"`
	PasswordHash     string        `ini:"password_hash"` // bcrypt; "" = no password login yet
	FailedLoginDelay time.Duration `ini:"failed_login_delay"`
	// LoginWorkers bounds the password checks (bcrypt) that run at once,
	// 0 = half the CPUs (at least 1); LoginQueue bounds the checks that
	// wait for a worker. Beyond both, a login is answered "busy" at once.
	LoginWorkers int64 `ini:"login_workers"`
	LoginQueue   int64 `ini:"login_queue"`
}

// AccessConfig is [access]: address rules for TCP API clients. A client is
// let in if it matches an Allow item and no Deny item. The items are
// validated (see ValidateAccessItem) but matching belongs to the agent.
type AccessConfig struct {
	Allow []string `ini:"allow"`
	Deny  []string `ini:"deny"`
}

// LogConfig is the log section: where and how much the agent logs.
type LogConfig struct {
	File  string `ini:"file"`  // "" = standard error
	Level string `ini:"level"` // debug, info, warn or error
	// AuditFile takes the audit lines (one per API call); "" = File.
	AuditFile string `ini:"audit_file"`
	// MaxSize is the size in MiB past which the agent rotates File and
	// AuditFile itself (0: it does not; logrotate moves them and a reload
	// reopens them); MaxFiles is how many rotated files it keeps.
	MaxSize  int64 `ini:"max_size"`
	MaxFiles int64 `ini:"max_files"`
}

// MetricsConfig is [metrics]: the Prometheus endpoint.
type MetricsConfig struct {
	// Address is host:port of the /metrics endpoint; "" = none.
	Address string `ini:"address"`
	// Auth asks scrapers for the API user and password (HTTP Basic).
	Auth bool `ini:"auth"`
}

// AgentConfig is [agent].
type AgentConfig struct {
	StateDir   string `ini:"state_dir"`
	XendConfig string `ini:"xend_config"` // xend-config.sxp to import, "" = none
	Hypervisor string `ini:"hypervisor"`  // auto, kvm or sim: the engine domains run on
	// MemoryReserve is host memory, in MiB, never given to domains.
	MemoryReserve int64 `ini:"memory_reserve"`
	// MemoryBacking is the pages of a domain's memory when its vm.cfg
	// has no memory_backing: auto, 4k, hugetlb or thp.
	MemoryBacking string `ini:"memory_backing"`
	VMMBinary     string `ini:"vmm_binary"` // "" = ovs-vmm beside the ovs-agent binary
	// FileDirs are directories, besides the repositories, in which paths
	// named by API callers (vm.cfg files, disks, save images, detach
	// folders) may lie.
	FileDirs []string `ini:"file_dirs"`
	// BlockDevices are the patterns (filepath.Match, under /dev/) of the
	// block devices a vm.cfg may give a guest as phy: disks, matched
	// against the path as written and the node it resolves to. A device
	// the host uses (mounted, swap, held by device-mapper, LVM or md) is
	// refused whatever the patterns say.
	BlockDevices []string `ini:"block_devices"`
	// SysShutdownCommand and SysRebootCommand are what the Oracle VM
	// Agent 3 calls sys_shutdown and sys_reboot run (an absolute program
	// path and its arguments, no shell); "" refuses the call.
	SysShutdownCommand string `ini:"sys_shutdown_command"`
	SysRebootCommand   string `ini:"sys_reboot_command"`
	// NTPFile is the file the Oracle VM Agent 3 call set_ntp writes the
	// time servers into (a systemd-timesyncd drop-in); NTPEnableCommand,
	// NTPDisableCommand and NTPRestartCommand turn the time service on,
	// off, and make it read the file again (absolute program and
	// arguments, no shell). "" refuses the calls that need it.
	NTPFile           string `ini:"ntp_file"`
	NTPEnableCommand  string `ini:"ntp_enable_command"`
	NTPDisableCommand string `ini:"ntp_disable_command"`
	NTPRestartCommand string `ini:"ntp_restart_command"`
	// SecondaryStorageDir is where the Oracle VM Agent 3 storage plugin
	// mounts file systems that are not repositories (CloudStack's
	// secondary storage and its primary's VirtualMachines folder, which
	// agent 3 mounts at /nfsmnt/<uuid>): one mount point per entry,
	// named by the caller's uuid. "" refuses such mounts.
	SecondaryStorageDir string `ini:"secondary_storage_dir"`
	// NetworkDevices are the patterns (filepath.Match) of the network
	// device names the Oracle VM Agent 3 network calls (ovs_br_config,
	// ovs_local_config, ovs_vlan_config, ovs_vlan_bridge, ovs_ip_config)
	// may create, remove, or change: the bridges and VLAN devices they make
	// and the devices they put into a bridge or give an address. Empty
	// refuses those calls.
	NetworkDevices []string `ini:"network_devices"`
	// StorageFence is what the CloudStack storage heartbeat does when a
	// repository's heartbeat has not been written for the manager's
	// timeout (less an interval): the other hosts will read this one as
	// dead and CloudStack starts all its VMs elsewhere. domains (destroy
	// every domain here), crash (crash the kernel, as CloudStack's
	// storagehealth.py does) or none (log).
	StorageFence string `ini:"storage_fence"`
}

// QEMUConfig is [qemu]: the qemu engine, which runs the domains whose
// vm.cfg describes an operating system (kernel, bootloader, builder =
// 'hvm', a bootable disk).
type QEMUConfig struct {
	// Binary is the qemu-system-x86_64 program: a command name looked up
	// in PATH, or an absolute path.
	Binary string `ini:"binary"`
	// Accel is auto, kvm or tcg: the accelerator qemu domains run on
	// (auto: kvm where hardware virtualization works, else tcg).
	Accel string `ini:"accel"`
}

// RelocationConfig is [relocation]: receiving domains from peer agents.
type RelocationConfig struct {
	Server     bool     `ini:"server"`      // plain relocation listener
	Address    string   `ini:"address"`     // "" = all addresses
	Port       int      `ini:"port"`        // plain listener port
	SSLServer  bool     `ini:"ssl_server"`  // TLS relocation listener
	SSLPort    int      `ini:"ssl_port"`    // TLS listener port
	SSL        bool     `ini:"ssl"`         // outgoing migrations use TLS by default
	HostsAllow []string `ini:"hosts_allow"` // regular expressions; none = every peer
	SSLCert    string   `ini:"ssl_cert"`    // "" = the API's certificate
	SSLKey     string   `ini:"ssl_key"`
	// PeerUser and PeerPasswordFile are the credentials outgoing
	// migrations present to target agents when the caller gives none
	// (xend.domain.migrate cannot give any).
	PeerUser         string `ini:"peer_user"`
	PeerPasswordFile string `ini:"peer_password_file"`
	// HandshakeTimeout bounds the TLS handshake and reading the hello.
	HandshakeTimeout time.Duration `ini:"handshake_timeout"`
	// MaxPending and MaxPendingPerAddress cap the connections, per
	// relocation listener and per peer address, that have not yet
	// authenticated.
	MaxPending           int64 `ini:"max_pending_connections"`
	MaxPendingPerAddress int64 `ini:"max_pending_per_address"`
	// ProgressTimeout is how long a migration may go without progress
	// from its peer (no page acknowledged, no answer in the commit)
	// before it fails and the source resumes the guest.
	ProgressTimeout time.Duration `ini:"progress_timeout"`
}

// RepositoryConfig is [repository]: the storage repositories the agent
// keeps mounted.
type RepositoryConfig struct {
	Enabled           bool          `ini:"enabled"`            // manage repositories at all
	Root              string        `ini:"root"`               // ROOT/<uuid>, the cluster root at ROOT
	RepositoriesFile  string        `ini:"repositories_file"`  // uuid source
	OptionsFile       string        `ini:"options_file"`       // uuid options
	StagingDir        string        `ini:"staging_dir"`        // backing mounts
	StateFile         string        `ini:"state_file"`         // what was applied
	MountTimeout      time.Duration `ini:"mount_timeout"`      // per mount(8)/umount(8)
	HeartbeatInterval time.Duration `ini:"heartbeat_interval"` // pool heartbeat refresh
}

// PoolConfig is [pool]: membership of a server pool whose state is kept
// in an etcd cluster. An empty Name means no pool: the agent is a single
// host, and the other options must keep their defaults.
type PoolConfig struct {
	Name string `ini:"name"` // the pool's name, a key segment in etcd; "" = no pool
	// HostName is the name this agent is a member by; "" = the system's
	// host name. Members of one pool have different names.
	HostName  string   `ini:"host_name"`
	Endpoints []string `ini:"endpoints"` // etcd client URLs, http:// or https://
	// LeaseTTL is the membership lease's time to live, whole seconds: a
	// member that cannot renew it for this long is out of the pool.
	LeaseTTL time.Duration `ini:"lease_ttl"`
	// FencingMargin is how long before the agent's own lease deadline
	// its HA guests must have stopped writing; at most LeaseTTL/2.
	FencingMargin time.Duration `ini:"fencing_margin"`
	DialTimeout   time.Duration `ini:"dial_timeout"` // connecting to an etcd endpoint
	CAFile        string        `ini:"ca_file"`      // PEM CA bundle for https endpoints; "" = system roots
	CertFile      string        `ini:"cert_file"`    // client certificate (PEM), with KeyFile
	KeyFile       string        `ini:"key_file"`
	User          string        `ini:"user"`          // etcd user; "" = no etcd authentication
	PasswordFile  string        `ini:"password_file"` // its password, first line; with User
	// DrainOnStop: an agent that stops first migrates its running pool
	// domains live to other members (for at most DrainTimeout), then
	// leaves the pool, revoking its lease; without it (or for what could
	// not move) the lease is left to etcd and the guests run on, fenced
	// at its end unless the agent is back within its TTL.
	DrainOnStop  bool          `ini:"drain_on_stop"`
	DrainTimeout time.Duration `ini:"drain_timeout"`
}

// DefaultQEMUBinary is [qemu] binary's default (vmm/qemu.DefaultBinary,
// which config must not import; a test of the agent keeps them equal).
const DefaultQEMUBinary = "/usr/bin/qemu-system-x86_64"

// origin says where one option's value came from.
type origin struct {
	file string // "" for a built-in default
	line int    // 1-based; 0 for a built-in default
	xend string // the xend option name when imported from xend-config.sxp
}

// Default returns the built-in configuration: what an empty agent.ini
// means, and what ExampleINI spells out.
func Default() *Config {
	return &Config{
		Server: ServerConfig{
			TCPServer:            true,
			ListenAddress:        "0.0.0.0",
			Port:                 8899,
			SSL:                  true,
			UnixServer:           true,
			UnixSocket:           "/var/run/ovs-agent/agent.sock",
			MaxRequestBytes:      4 << 20,
			ReadTimeout:          30 * time.Second,
			HeaderTimeout:        10 * time.Second,
			MaxPending:           512,
			MaxPendingPerAddress: 64,
		},
		Auth: AuthConfig{
			User:             "admin",
			FailedLoginDelay: time.Second,
			LoginQueue:       64,
		},
		Access: AccessConfig{
			Allow: []string{"*"},
		},
		Metrics: MetricsConfig{Auth: true},
		Log: LogConfig{
			Level:    "info",
			MaxFiles: 5,
		},
		Agent: AgentConfig{
			StateDir:            "/var/lib/ovs-agent",
			Hypervisor:          "auto",
			MemoryReserve:       1024,
			MemoryBacking:       "auto",
			BlockDevices:        DefaultBlockDevices(),
			SecondaryStorageDir: "/nfsmnt",
			StorageFence:        "domains",
		},
		QEMU: QEMUConfig{
			Binary: DefaultQEMUBinary,
			Accel:  "auto",
		},
		Relocation: RelocationConfig{
			Server:               true,
			Port:                 8002,
			SSLPort:              8003,
			PeerUser:             "admin",
			HandshakeTimeout:     15 * time.Second,
			MaxPending:           64,
			MaxPendingPerAddress: 8,
			ProgressTimeout:      30 * time.Second,
		},
		Repository: RepositoryConfig{
			Enabled:           true,
			Root:              "/OVS",
			RepositoriesFile:  "/etc/ovs/repositories",
			OptionsFile:       "/etc/ovs/repositories.options",
			StagingDir:        "/var/ovs/mount",
			StateFile:         "/var/run/ovs-agent/repositories.state",
			MountTimeout:      30 * time.Second,
			HeartbeatInterval: 10 * time.Second,
		},
		Pool: PoolConfig{
			LeaseTTL:      10 * time.Second,
			FencingMargin: 3 * time.Second,
			DialTimeout:   5 * time.Second,
			DrainOnStop:   true,
			DrainTimeout:  5 * time.Minute,
		},
		origins: map[string]origin{},
	}
}

// DefaultBlockDevices is [agent] block_devices' default: the stable names
// (multipath and device-mapper, by-id, by-path, by-uuid), the usual disk
// nodes, loop and nbd devices.
func DefaultBlockDevices() []string {
	return []string{
		"/dev/mapper/*", "/dev/disk/by-id/*", "/dev/disk/by-path/*", "/dev/disk/by-uuid/*",
		"/dev/sd*", "/dev/vd*", "/dev/xvd*", "/dev/nvme*", "/dev/dm-*", "/dev/md*",
		"/dev/loop*", "/dev/nbd*",
	}
}

// DefaultForDir returns the defaults adjusted for running an unprivileged
// development agent out of dir: the API and the relocation listener on
// 127.0.0.1 only, TLS off, and the state directory ("state"), log file
// ("agent.log") and unix socket ("agent.sock") inside dir, which is made
// absolute. It does not create anything; check it with Validate (a unix
// socket path longer than 107 bytes is rejected).
func DefaultForDir(dir string) *Config {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	c := Default()
	c.Server.ListenAddress = "127.0.0.1"
	c.Server.SSL = false
	c.Server.UnixSocket = filepath.Join(abs, "agent.sock")
	c.Agent.StateDir = filepath.Join(abs, "state")
	c.Log.File = filepath.Join(abs, "agent.log")
	c.Relocation.Address = "127.0.0.1"
	c.Repository.Root = filepath.Join(abs, "OVS")
	c.Repository.RepositoriesFile = filepath.Join(abs, "ovs", "repositories")
	c.Repository.OptionsFile = filepath.Join(abs, "ovs", "repositories.options")
	c.Repository.StagingDir = filepath.Join(abs, "mount")
	c.Repository.StateFile = filepath.Join(abs, "repositories.state")
	c.Agent.FileDirs = []string{filepath.Join(abs, "files")}
	c.Agent.SecondaryStorageDir = filepath.Join(abs, "nfsmnt")
	return c
}

// Source returns the name of the agent.ini the configuration was parsed
// from, or "" for one built by Default or DefaultForDir.
func (c *Config) Source() string { return c.file }

// XendSource returns the xend-config.sxp that was imported, or "".
func (c *Config) XendSource() string { return c.xendFile }

// Where says where the value of an option came from: "file:line" of
// agent.ini, "file:line" of the imported xend-config.sxp, or "default".
// It returns "" for an option that does not exist.
func (c *Config) Where(section, key string) string {
	if c.option(section, key) == nil {
		return ""
	}
	o, ok := c.origins[section+"."+key]
	if !ok || o.file == "" {
		return "default"
	}
	return fmt.Sprintf("%s:%d", o.file, o.line)
}

// Value returns an option's current value written as agent.ini would
// hold it, and false if there is no such option.
func (c *Config) Value(section, key string) (string, bool) {
	o := c.option(section, key)
	if o == nil {
		return "", false
	}
	return o.val.String(), true
}

// OptionError attributes err, found by a later check of an option's value
// (say, a certificate file that cannot be read), to where that value came
// from, in the same form as the errors of Parse:
//
//	/etc/ovs-agent/agent.ini:12: [server] ssl_cert: open ...: no such file or directory
//
// c may be nil.
func OptionError(c *Config, section, key string, err error) error {
	p := &Problem{Section: section, Key: key, Err: err}
	if c == nil {
		return p
	}
	o, ok := c.origins[section+"."+key]
	if !ok || o.file == "" {
		p.Default = true
		p.Where = c.file
		return p
	}
	p.Where = fmt.Sprintf("%s:%d", o.file, o.line)
	p.Xend = o.xend
	return p
}

// Validate checks every value and the rules between options, as Parse
// does. Use it on a Config built or changed in code.
func (c *Config) Validate() error {
	var errs []error
	for _, o := range c.options() {
		if err := o.val.check(); err != nil {
			errs = append(errs, OptionError(c, o.section, o.key, err))
		}
	}
	errs = append(errs, c.crossCheck()...)
	if len(errs) > 0 {
		return &ValidationError{Errs: errs}
	}
	return nil
}
