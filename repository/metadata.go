package repository

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// MetadataFile is the name of the metadata file at the top of every
// repository, as in Oracle VM Server 2.2. It records what ovs-makerepo
// was given, so that every server that mounts the repository knows it
// the same way: the repositories file has only uuid and source.
const MetadataFile = ".ovsrepo"

// HeartbeatFile is the pool heartbeat file on the cluster root.
const HeartbeatFile = ".server_pool_hb"

// The standard folders of a repository.
const (
	RunningPool = "running_pool" // guests: running_pool/NAME/vm.cfg and images
	SeedPool    = "seed_pool"    // templates: seed_pool/NAME/vm.cfg and images
	ISOPool     = "iso_pool"     // ISO images: iso_pool/*.iso
	PublishPool = "publish_pool" // guests deployed as public
	SharedDisk  = "sharedDisk"   // shared virtual disks
)

// PoolDirs are the standard folders, created in every repository.
var PoolDirs = []string{RunningPool, SeedPool, ISOPool, PublishPool, SharedDisk}

// Values of Metadata.Shared (the shared argument of ovs-makerepo).
const (
	SharedLocal       = "0" // local, host-specific storage
	SharedYes         = "1" // shared storage
	SharedClusterRoot = "C" // shared, and the cluster root: mounted at ROOT, carries the heartbeat
)

// MetadataVersion is the version ovs-agent writes.
const MetadataVersion = 1

// Limits on the metadata file.
const (
	MaxMetadataSize   = 64 << 10
	MaxDescriptionLen = 256
)

// Keys of the metadata file.
const (
	keyUUID        = "OVS_REPO_UUID"
	keyVersion     = "OVS_REPO_VERSION"
	keyShared      = "OVS_REPO_SHARED"
	keyDescription = "OVS_REPO_DESCRIPTION"
)

// Metadata is the content of a repository's .ovsrepo file:
//
//	# Oracle VM repository metadata, written by ovs-makerepo.
//	OVS_REPO_UUID=0a4b...
//	OVS_REPO_VERSION=1
//	OVS_REPO_SHARED=1
//	OVS_REPO_DESCRIPTION=text to the end of the line
//
// Lines are KEY=VALUE; '#' lines and blank lines are ignored, and so are
// keys this version does not know (a later version may add some).
type Metadata struct {
	UUID        string
	Version     int
	Shared      string // SharedLocal, SharedYes or SharedClusterRoot
	Description string
}

// ParseShared reads the shared argument: 0, 1 or C (c is taken as C).
func ParseShared(s string) (string, error) {
	switch s {
	case SharedLocal, SharedYes, SharedClusterRoot:
		return s, nil
	case "c":
		return SharedClusterRoot, nil
	}
	return "", fmt.Errorf("shared %q: want 0 (local), 1 (shared) or C (shared cluster root)", clip(s, 40))
}

// CheckDescription checks a repository description: at most
// MaxDescriptionLen bytes of printable UTF-8 on one line.
func CheckDescription(d string) error {
	if len(d) > MaxDescriptionLen {
		return fmt.Errorf("description is longer than %d bytes", MaxDescriptionLen)
	}
	if !utf8.ValidString(d) {
		return fmt.Errorf("description is not valid UTF-8")
	}
	for _, r := range d {
		if r != ' ' && !unicode.IsPrint(r) {
			return fmt.Errorf("description contains the non-printable character %q", r)
		}
	}
	return nil
}

// ParseMetadata reads a metadata file. name is used in errors.
func ParseMetadata(name string, data []byte) (Metadata, error) {
	var m Metadata
	if len(data) > MaxMetadataSize {
		return m, fmt.Errorf("%s: larger than %d bytes", name, MaxMetadataSize)
	}
	seen := map[string]int{}
	for _, l := range contentLines(data) {
		k, v, ok := strings.Cut(l.text, "=")
		if !ok {
			return m, fmt.Errorf("%s:%d: want KEY=VALUE", name, l.n)
		}
		k = strings.TrimSpace(k)
		switch k {
		case keyUUID, keyVersion, keyShared, keyDescription:
		default:
			continue
		}
		if first, dup := seen[k]; dup {
			return m, fmt.Errorf("%s:%d: %s given again (first on line %d)", name, l.n, k, first)
		}
		seen[k] = l.n
		switch k {
		case keyUUID:
			v = strings.TrimSpace(v)
			if err := CheckUUID(v); err != nil {
				return m, fmt.Errorf("%s:%d: %s: %w", name, l.n, k, err)
			}
			m.UUID = v
		case keyVersion:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return m, fmt.Errorf("%s:%d: %s %q is not a positive integer", name, l.n, k, clip(v, 20))
			}
			m.Version = n
		case keyShared:
			s, err := ParseShared(strings.TrimSpace(v))
			if err != nil {
				return m, fmt.Errorf("%s:%d: %s: %w", name, l.n, k, err)
			}
			m.Shared = s
		case keyDescription:
			_, v, _ = strings.Cut(l.raw, "=") // verbatim, blanks included
			if err := CheckDescription(v); err != nil {
				return m, fmt.Errorf("%s:%d: %s: %w", name, l.n, k, err)
			}
			m.Description = v
		}
	}
	if m.UUID == "" {
		return m, fmt.Errorf("%s: no %s", name, keyUUID)
	}
	if m.Shared == "" {
		return m, fmt.Errorf("%s: no %s", name, keyShared)
	}
	if m.Version == 0 {
		m.Version = MetadataVersion
	}
	return m, nil
}

// Marshal renders the metadata file. m must be valid (ParseMetadata reads
// it back equal).
func (m Metadata) Marshal() []byte {
	v := m.Version
	if v == 0 {
		v = MetadataVersion
	}
	return fmt.Appendf(nil, "# Oracle VM repository metadata, written by ovs-makerepo (ovs-agent).\n%s=%s\n%s=%d\n%s=%s\n%s=%s\n",
		keyUUID, m.UUID, keyVersion, v, keyShared, m.Shared, keyDescription, m.Description)
}

// ReadMetadata reads the metadata file of the repository mounted at dir.
// It reports fs.ErrNotExist (wrapped) when dir is not a repository.
func ReadMetadata(dir string) (Metadata, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Metadata{}, fmt.Errorf("read repository metadata: %w", err)
	}
	defer root.Close()
	return readMetadataIn(root, dir)
}

func readMetadataIn(root *os.Root, dir string) (Metadata, error) {
	name := dir + "/" + MetadataFile
	data, err := boundedfile.ReadFileIn(root, MetadataFile, MaxMetadataSize)
	if err != nil {
		return Metadata{}, fmt.Errorf("read %s: %w", name, err)
	}
	return ParseMetadata(name, data)
}

// initRepository writes the metadata file into the (mounted, empty of
// metadata) file system at dir and creates the pool folders.
func initRepository(dir string, m Metadata) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("initialize repository: %w", err)
	}
	defer root.Close()
	if _, err := root.Lstat(MetadataFile); err == nil {
		return fmt.Errorf("initialize repository at %s: %s exists already", dir, MetadataFile)
	}
	if err := ensurePools(root, dir); err != nil {
		return err
	}
	return atomicfile.WriteFile(dir+"/"+MetadataFile, m.Marshal(), 0o644)
}

// ensurePools creates the missing pool folders. A read-only file system
// is not an error: the folders are then simply not there.
func ensurePools(root *os.Root, dir string) error {
	for _, p := range PoolDirs {
		err := root.Mkdir(p, 0o755)
		if err == nil || errors.Is(err, fs.ErrExist) || isReadOnly(err) {
			continue
		}
		return fmt.Errorf("create %s/%s: %w", dir, p, err)
	}
	return nil
}
