package qmp

import (
	"context"
	"errors"
	"sort"
)

// Run states of query-status (QEMU's RunState), the ones the engine meets.
const (
	StatusRunning       = "running"
	StatusPaused        = "paused"         // stop, or a migration target loaded (-S)
	StatusPrelaunch     = "prelaunch"      // -S before the first cont
	StatusInMigrate     = "inmigrate"      // -incoming, waiting for or loading the stream
	StatusPostMigrate   = "postmigrate"    // a migration source after completion
	StatusFinishMigrate = "finish-migrate" // a migration source in its stop-and-copy
	StatusShutdown      = "shutdown"       // the guest powered off (with -no-shutdown)
	StatusGuestPanicked = "guest-panicked"
	StatusInternalError = "internal-error"
	StatusIOError       = "io-error"
	StatusSuspended     = "suspended"
)

// Status is the answer to query-status.
type Status struct {
	Status  string `json:"status"` // one of the Status* constants
	Running bool   `json:"running"`
}

// QueryStatus is query-status.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// Stop pauses the vCPUs (`stop`).
func (c *Client) Stop(ctx context.Context) error { return c.Execute(ctx, "stop", nil, nil) }

// Cont resumes the vCPUs (`cont`).
func (c *Client) Cont(ctx context.Context) error { return c.Execute(ctx, "cont", nil, nil) }

// SystemPowerdown presses the ACPI power button (`system_powerdown`); the
// guest decides what it does.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit ends QEMU (`quit`). QEMU may close the connection before its
// answer arrives; that counts as done.
func (c *Client) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrDisconnected) {
		return nil
	}
	return err
}

// Migration statuses of query-migrate (QEMU's MigrationStatus).
const (
	MigrationNone       = "none"
	MigrationSetup      = "setup"
	MigrationActive     = "active"
	MigrationDevice     = "device" // stop-and-copy of the device state
	MigrationCompleted  = "completed"
	MigrationFailed     = "failed"
	MigrationCancelled  = "cancelled"
	MigrationCancelling = "cancelling"
)

// MigrationInfo is the answer to query-migrate: all times in ms. QEMU 7.2
// may say completed with TotalTime 0 for a moment; ask again.
type MigrationInfo struct {
	Status           string        `json:"status"` // one of Migration*, "" before any migration
	TotalTime        int64         `json:"total-time"`
	ExpectedDowntime int64         `json:"expected-downtime"` // while active
	Downtime         int64         `json:"downtime"`          // once completed
	SetupTime        int64         `json:"setup-time"`
	RAM              *MigrationRAM `json:"ram"`
	ErrorDesc        string        `json:"error-desc"` // when failed
}

// MigrationRAM is query-migrate's ram figures.
type MigrationRAM struct {
	Transferred      int64   `json:"transferred"` // bytes
	Remaining        int64   `json:"remaining"`   // bytes
	Total            int64   `json:"total"`       // bytes of guest RAM
	Duplicate        int64   `json:"duplicate"`   // zero pages
	Normal           int64   `json:"normal"`      // pages sent whole
	NormalBytes      int64   `json:"normal-bytes"`
	DirtyPagesRate   int64   `json:"dirty-pages-rate"` // pages per second
	Mbps             float64 `json:"mbps"`
	DirtySyncCount   int64   `json:"dirty-sync-count"` // dirty-log syncs: the rounds
	PageSize         int64   `json:"page-size"`
	PagesPerSecond   int64   `json:"pages-per-second"`
	PrecopyBytes     int64   `json:"precopy-bytes"`
	DowntimeBytes    int64   `json:"downtime-bytes"`
	PostcopyRequests int64   `json:"postcopy-requests"`
}

// QueryMigrate is query-migrate.
func (c *Client) QueryMigrate(ctx context.Context) (MigrationInfo, error) {
	var m MigrationInfo
	err := c.Execute(ctx, "query-migrate", nil, &m)
	return m, err
}

// MigrationParameters are the migrate-set-parameters the engine sets; nil
// fields are left as they are.
type MigrationParameters struct {
	MaxBandwidth         *int64 `json:"max-bandwidth,omitempty"`  // bytes/s (QEMU's default: 32 MiB/s)
	DowntimeLimit        *int64 `json:"downtime-limit,omitempty"` // ms
	CPUThrottleInitial   *int64 `json:"cpu-throttle-initial,omitempty"`
	CPUThrottleIncrement *int64 `json:"cpu-throttle-increment,omitempty"`
	MaxCPUThrottle       *int64 `json:"max-cpu-throttle,omitempty"`
	AnnounceRounds       *int64 `json:"announce-rounds,omitempty"`
}

// MigrateSetParameters is migrate-set-parameters.
func (c *Client) MigrateSetParameters(ctx context.Context, p MigrationParameters) error {
	return c.Execute(ctx, "migrate-set-parameters", p, nil)
}

// MigrateSetCapabilities is migrate-set-capabilities, e.g.
// {"auto-converge": true, "events": true}.
func (c *Client) MigrateSetCapabilities(ctx context.Context, caps map[string]bool) error {
	type capability struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	args := struct {
		Capabilities []capability `json:"capabilities"`
	}{Capabilities: []capability{}}
	names := make([]string, 0, len(caps))
	for n := range caps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		args.Capabilities = append(args.Capabilities, capability{n, caps[n]})
	}
	return c.Execute(ctx, "migrate-set-capabilities", args, nil)
}

// Migrate starts an outgoing migration to uri ("fd:NAME" after SendFD,
// "unix:PATH", "tcp:HOST:PORT", "exec:..."); it returns when QEMU has
// started it: follow it with QueryMigrate or the MIGRATION event.
func (c *Client) Migrate(ctx context.Context, uri string) error {
	return c.Execute(ctx, "migrate", map[string]string{"uri": uri}, nil)
}

// MigrateIncoming starts loading an incoming migration from uri, on a QEMU
// started with -incoming defer.
func (c *Client) MigrateIncoming(ctx context.Context, uri string) error {
	return c.Execute(ctx, "migrate-incoming", map[string]string{"uri": uri}, nil)
}

// MigrateCancel is migrate_cancel.
func (c *Client) MigrateCancel(ctx context.Context) error {
	return c.Execute(ctx, "migrate_cancel", nil, nil)
}
