package poolmaster

import (
	"go.uber.org/zap"

	"time"

	"github.com/ovs-agent/ovs-agent/agent/pool"
)

// The records of a pool domain, as layer 2 of issue 15 lays them out
// (keys under /ovs/pools/NAME/domains/UUID/, JSON values). Spec and
// status are written by the master only, through Master.Write; the owner
// key is agent/pool's.

// Desired states of a Spec.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// States of a Status.
const (
	StateRunning = "running"
	StatePending = "pending"
	StateStopped = "stopped"
)

// Spec is what the pool wants of a domain.
type Spec struct {
	Name   string `json:"name"`
	UUID   string `json:"uuid"`
	Config string `json:"config"` // the vm.cfg text; its disks on a repository every member mounts
	HA     bool   `json:"ha"`
	// Desired is "running" or "stopped".
	Desired string `json:"desired"`
	// Preferred are the servers it may run on (Manual placement); empty
	// is Auto: any member.
	Preferred []string `json:"preferred"`
	// Priority orders the pending queue: higher starts first.
	Priority int `json:"priority"`
}

// Status is where a domain stands, as the master last saw it.
type Status struct {
	State  string    `json:"state"`            // running, pending or stopped
	Host   string    `json:"host,omitempty"`   // where it runs (or is being started)
	Reason string    `json:"reason,omitempty"` // why pending or stopped
	Since  time.Time `json:"since"`            // when State last changed
}

// Maintenance is a maintenance key's value: the member gets no new
// placements while the key exists.
type Maintenance struct {
	Since time.Time `json:"since"`
}

func domainsPrefix(p string) string     { return pool.Prefix(p) + "domains/" }
func specKey(p, uuid string) string     { return domainsPrefix(p) + uuid + "/spec" }
func statusKey(p, uuid string) string   { return domainsPrefix(p) + uuid + "/status" }
func maintenancePrefix(p string) string { return pool.Prefix(p) + "maintenance/" }
func maintenanceKey(p, host string) string {
	return maintenancePrefix(p) + host
}

var zapNop = zap.NewNop()
