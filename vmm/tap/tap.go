package tap

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = unix.IFNAMSIZ - 1

// MaxIndex is the highest vif index Name accepts.
const MaxIndex = 999

// tunDevice is the tun driver's clone device.
const tunDevice = "/dev/net/tun"

// CheckName returns why name cannot be an interface name, or nil: 1 to
// 15 bytes of letters, digits, '.', '-' and '_', not "." or "..".
func CheckName(name string) error {
	if name == "" {
		return errors.New("interface name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("interface name %q is %d bytes long; Linux allows at most %d", name, len(name), MaxNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("interface name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("interface name %q: only letters, digits, '.', '-' and '_' are allowed", name)
		}
	}
	return nil
}

// Name is the tap device name of vif number index of the VMM identified
// by id (the domain's UUID; a second VMM of the same domain on the same
// host, such as the target of a migration on one host, passes a
// different id, e.g. the UUID and "incoming"). The scheme is xend's
// "vif<domid>.<index>" with the domain ID replaced by 8 hex digits of the
// SHA-256 of id: "vif" + 8 hex + "." + index, at most 15 bytes for index
// 0 to MaxIndex. Two ids share a name with a probability of 2^-32.
func Name(id string, index int) (string, error) {
	if index < 0 || index > MaxIndex {
		return "", fmt.Errorf("vif index %d is out of range (0 to %d)", index, MaxIndex)
	}
	if id == "" {
		return "", errors.New("tap name: empty domain id")
	}
	sum := sha256.Sum256([]byte(id))
	return "vif" + hex.EncodeToString(sum[:4]) + "." + strconv.Itoa(index), nil
}

// MAC is the address of vif number index of the domain id (its UUID)
// when the vif names none: Xen's OUI 00:16:3e (universally administered,
// unicast) and three bytes of the SHA-256 of id and index, the first of
// them 0x00 to 0x7f as xend's randomMAC makes it. It is the same on every
// start and on a migration's target, so the guest keeps its address.
func MAC(id string, index int) string {
	sum := sha256.Sum256([]byte(id + "/vif/" + strconv.Itoa(index)))
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", sum[0]&0x7f, sum[1], sum[2])
}

// Create makes the tap device name, puts it on bridge, sets it up and
// returns its descriptor for QEMU (-netdev tap,fd=N). The device lasts
// as long as a descriptor of it is open. bridge must exist and be a
// bridge (see BridgeExists); a name in use is an error. On any error
// nothing is left behind.
func Create(name, bridge string) (*os.File, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("create tap device: %w", err)
	}
	if err := BridgeExists(bridge); err != nil {
		return nil, fmt.Errorf("create tap device %s: %w", name, err)
	}
	f, err := openTap(name, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	if err != nil {
		return nil, err
	}
	if err := attach(name, bridge); err != nil {
		f.Close() // the device goes with its only descriptor
		return nil, err
	}
	return f, nil
}

// openTap opens the tun clone device and makes (or attaches to) the tap
// device name with flags.
func openTap(name string, flags uint16) (*os.File, error) {
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create tap device %s: open %s: %w (is the tun module loaded, and does the agent run as root?)", name, tunDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap device %s: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY):
			return nil, fmt.Errorf("create tap device %s: the name is in use by another running process (a VMM of the same domain?)", name)
		case errors.Is(err, unix.EINVAL):
			return nil, fmt.Errorf("create tap device %s: an interface of that name exists and is not a tap device", name)
		case errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("create tap device %s: %w (needs CAP_NET_ADMIN)", name, err)
		}
		return nil, fmt.Errorf("create tap device %s: TUNSETIFF: %w", name, err)
	}
	return os.NewFile(uintptr(fd), tunDevice+":"+name), nil
}

// attach puts the device name on bridge and sets it up.
func attach(name, bridge string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tap device %s: socket: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return fmt.Errorf("tap device %s: index: %w", name, err)
	}
	index := ifr.Uint32()
	br, err := unix.NewIfreq(bridge)
	if err != nil {
		return err
	}
	br.SetUint32(index)
	if err := unix.IoctlIfreq(s, unix.SIOCBRADDIF, br); err != nil {
		return fmt.Errorf("put tap device %s on bridge %s: %w", name, bridge, err)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("tap device %s: flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set tap device %s up: %w", name, err)
	}
	return nil
}

// Remove deletes the tap device name if there is one that no process
// holds open: it attaches to it, clears its persistence and closes it.
// A name that does not exist is not an error; one that a running process
// (a VMM) holds is, and so is an interface of that name that is not a tap
// device: Remove deletes nothing else.
func Remove(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("remove tap device: %w", err)
	}
	if _, err := link(name); errors.Is(err, errNoLink) {
		return nil
	} else if err != nil {
		return fmt.Errorf("remove tap device %s: %w", name, err)
	}
	// Attach with the flags Create uses; a multi-queue tap of someone
	// else's is refused as not ours.
	f, err := openTap(name, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.TUNSETPERSIST, 0); err != nil {
		return fmt.Errorf("remove tap device %s: clear persistence: %w", name, err)
	}
	return nil
}

// BridgeExists returns nil if name is a bridge of this host (the calling
// thread's network namespace), else an error that says what to do.
func BridgeExists(name string) error {
	if err := CheckName(name); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	l, err := link(name)
	if errors.Is(err, errNoLink) {
		return fmt.Errorf("bridge %s does not exist on this host: create it or change the vif's bridge=", name)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if l.kind != "bridge" {
		kind := l.kind
		if kind == "" {
			kind = "a device"
		}
		return fmt.Errorf("%s on this host is %s, not a bridge: change the vif's bridge= to a bridge", name, article(kind))
	}
	return nil
}

func article(kind string) string {
	if kind == "a device" {
		return kind
	}
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + kind
	}
	return "a " + kind
}
