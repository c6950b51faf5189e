package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// FileName is the manifest's name in the domain's folder.
const FileName = "ovs-detached.json"

// Version is the format version this package writes and reads.
const Version = 1

// MaxSize bounds a manifest file.
const MaxSize = 1 << 20

// Manifest describes a detached domain.
type Manifest struct {
	Version      int       `json:"version"`
	Name         string    `json:"name"`
	UUID         string    `json:"uuid"`
	DetachedAt   time.Time `json:"detached_at"`
	DetachedFrom string    `json:"detached_from"` // host name
	AgentVersion string    `json:"agent_version"`
	// Config is the domain's vm.cfg text as it was on the detaching host.
	Config string `json:"config"`
	// Folder is the domain's folder, relative to the root of Repository.
	Folder     string   `json:"folder"`
	Repository string   `json:"repository"` // UUID of the repository holding Folder
	Disks      []Disk   `json:"disks"`
	Requires   Requires `json:"requires"`
}

// Disk is one file disk of a detached domain.
type Disk struct {
	Device string `json:"device"`
	// Path is relative to the root of Repository.
	Path       string `json:"path"`
	Repository string `json:"repository"`
	Size       int64  `json:"size"`
	Digest     string `json:"digest"` // relocation/filexfer content digest
}

// Requires is what a host must offer to run the domain.
type Requires struct {
	Engine    string   `json:"engine"` // kvm or sim
	MemoryMiB int      `json:"memory_mib"`
	VCPUs     int      `json:"vcpus"`
	Bridges   []string `json:"bridges,omitempty"` // every bridge a vif names
	CPUVendor string   `json:"cpu_vendor,omitempty"`
}

var (
	uuidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	digestRE = regexp.MustCompile(`^sha256-blocks:[0-9a-f]{64}$`)
	engineRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	bridgeRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)
)

// CheckPath reports whether p, a path from a manifest, stays inside the
// repository root it is relative to.
func CheckPath(p string) error {
	switch {
	case p == "" || len(p) > 4096:
		return fmt.Errorf("path %q is empty or too long", p)
	case !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return fmt.Errorf("path %q holds control characters or backslashes", p)
	case strings.HasPrefix(p, "/") || !filepath.IsLocal(p) || filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not a clean path inside the repository", p)
	}
	return nil
}

// Parse reads a manifest; name says where it came from, for errors.
func Parse(name string, data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: %d bytes; a manifest is at most %d", name, len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: not a detach manifest: %v", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the manifest", name)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// Validate checks a manifest's fields and that its configuration agrees
// with them.
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("manifest version %d; this agent reads version %d", m.Version, Version)
	}
	if !uuidRE.MatchString(m.UUID) {
		return fmt.Errorf("uuid %q is not a UUID", m.UUID)
	}
	if !uuidRE.MatchString(m.Repository) {
		return fmt.Errorf("repository %q is not a UUID", m.Repository)
	}
	if err := CheckPath(m.Folder); err != nil {
		return fmt.Errorf("folder: %w", err)
	}
	cfg, err := vmcfg.Parse("manifest config", []byte(m.Config))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.Name != m.Name {
		return fmt.Errorf("config names the domain %q, the manifest %q", cfg.Name, m.Name)
	}
	if !strings.EqualFold(cfg.UUID, m.UUID) {
		return fmt.Errorf("config has uuid %q, the manifest %q", cfg.UUID, m.UUID)
	}
	if len(m.Disks) > 256 {
		return fmt.Errorf("%d disks; at most 256", len(m.Disks))
	}
	seen := map[string]bool{}
	for i, d := range m.Disks {
		if err := CheckPath(d.Path); err != nil {
			return fmt.Errorf("disk %d: %w", i+1, err)
		}
		if !uuidRE.MatchString(d.Repository) {
			return fmt.Errorf("disk %d: repository %q is not a UUID", i+1, d.Repository)
		}
		k := strings.ToLower(d.Repository) + "/" + d.Path
		if seen[k] {
			return fmt.Errorf("disk %d: %s listed twice", i+1, d.Path)
		}
		seen[k] = true
		if d.Size < 0 {
			return fmt.Errorf("disk %d: negative size", i+1)
		}
		if !digestRE.MatchString(d.Digest) {
			return fmt.Errorf("disk %d: digest %q is not sha256-blocks:<64 hex digits>", i+1, d.Digest)
		}
		if d.Device == "" || len(d.Device) > 32 {
			return fmt.Errorf("disk %d: bad device %q", i+1, d.Device)
		}
	}
	r := m.Requires
	if !engineRE.MatchString(r.Engine) {
		return fmt.Errorf("requires.engine %q is not an engine name", r.Engine)
	}
	if r.MemoryMiB <= 0 || r.VCPUs <= 0 {
		return fmt.Errorf("requires: memory_mib and vcpus must be positive")
	}
	if len(r.Bridges) > 64 {
		return fmt.Errorf("requires.bridges: %d; at most 64", len(r.Bridges))
	}
	for _, b := range r.Bridges {
		if !bridgeRE.MatchString(b) {
			return fmt.Errorf("requires.bridges: %q is not an interface name", b)
		}
	}
	return nil
}

// Marshal renders the manifest as written to FileName.
func (m *Manifest) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
