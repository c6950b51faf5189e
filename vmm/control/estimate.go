package control

import "time"

// OpEstimate measures the guest for the dry run's prediction (migration
// check). With Request.Window > 0 it starts a measurement of that length
// (at most MaxEstimateWindow) and answers at once; with Window 0 it reports
// the latest measurement, Done once it has ended. While it runs the VMM
// turns dirty logging on, fetches the log every EstimateInterval and turns
// logging off at the end. It is refused while a migration or save runs; a
// migration or save that starts ends it early (Error says so), so that the
// dirty log is the migration's alone.
const OpEstimate = "estimate"

// Estimate bounds and cadence.
const (
	MaxEstimateWindow = 5 * time.Second
	// EstimateInterval is the dirty-log fetch period, the migration
	// sender's own (its skip rule fetches every 50 ms).
	EstimateInterval = 50 * time.Millisecond
)

// Estimate is one measurement of a guest's memory behaviour.
type Estimate struct {
	Done  bool   `json:"done"`
	Error string `json:"error,omitempty"` // why the measurement ended early or failed
	// Paused: the guest was paused, so nothing was measured (it dirties
	// nothing).
	Paused bool `json:"paused,omitempty"`
	// Window is the time measured so far.
	Window time.Duration `json:"window_ns"`
	// DirtyRate is bytes of pages dirtied per second, from the fetches
	// (a page written twice within one interval counts once, as for the
	// migration).
	DirtyRate float64 `json:"dirty_rate"`
	// Samples follow the dirty set as it grows: after each fetch, the
	// time since the start and the distinct bytes dirtied since then.
	Samples []EstimateSample `json:"samples,omitempty"`
	// TouchedBytes is the guest memory that holds data (SEEK_DATA on the
	// memfd): what the first round of a migration reads.
	TouchedBytes uint64 `json:"touched_bytes"`
	MemoryBytes  uint64 `json:"memory_bytes"`
}

// EstimateSample is the dirty set at one fetch.
type EstimateSample struct {
	At    time.Duration `json:"at_ns"`
	Bytes uint64        `json:"bytes"` // distinct bytes dirtied since the start
}
