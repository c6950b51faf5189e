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

// Desired states of a Spec, and states of a Status.
const (
	DesiredRunning = pool.DesiredRunning
	DesiredStopped = pool.DesiredStopped

	StateRunning = pool.StatusRunning
	StatePending = pool.StatusPending
	StateStopped = pool.StatusStopped
)

// Spec is what the pool wants of a domain (agent/pool's record).
type Spec = pool.DomainSpec

// Status is where a domain stands, as the master last saw it.
type Status = pool.DomainStatus

// Maintenance is a maintenance key's value: the member gets no new
// placements while the key exists.
type Maintenance struct {
	Since time.Time `json:"since"`
}

func domainsPrefix(p string) string     { return pool.DomainsPrefix(p) }
func specKey(p, uuid string) string     { return pool.SpecKey(p, uuid) }
func statusKey(p, uuid string) string   { return pool.StatusKey(p, uuid) }
func maintenancePrefix(p string) string { return pool.Prefix(p) + "maintenance/" }
func maintenanceKey(p, host string) string {
	return maintenancePrefix(p) + host
}

var zapNop = zap.NewNop()
