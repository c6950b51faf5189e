package control

import "fmt"

// This file is the one vocabulary of what crosses the agent/VMM boundary:
// the VMM's machine states, the reasons a VMM ends, the phases of a
// migration or save as a VMM reports them, and the commit decision the
// agent hands the source VMM. transitions.go says which phase may follow
// which, on which side.

// State is what a VMM says its machine is doing (Info.State).
type State string

// VMM states.
const (
	// StateIncoming: started with --incoming, no machine yet; the machine
	// comes with the migration (or the restore image).
	StateIncoming State = "incoming"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	// StateStopping: the VMM was asked to end (shutdown, destroy) or its
	// guest left (migrated, saved); it exits next, or, for a shutdown,
	// once the guest has powered off (a guest that does not is fenced
	// when its lease runs out, as a running one).
	StateStopping State = "stopping"
	// StateFenced: the run-until time of the domain's lease (OpLease)
	// passed without a renewal, and the VMM paused the guest by itself
	// (vCPUs stopped, block I/O drained: no disk write follows). Only a
	// lease whose run-until time is in the future resumes it (or the
	// operator's pause takes it over, or destroy ends it). See lease.go.
	StateFenced State = "fenced"
)

// PauseReason says why a running VMM's guest does not run although
// nobody paused it (Info.PausedFor); empty when it runs, or when the
// operator paused it (StatePaused).
type PauseReason string

// Pause reasons.
const (
	// PausedForMigration: its vCPUs are stopped for an outgoing
	// migration or save (stop-and-copy until the commit or the failure
	// resumes it).
	PausedForMigration PauseReason = "migration"
	// PausedForFence: the lease's run-until time passed (StateFenced).
	PausedForFence PauseReason = "fenced"
)

// ExitReason says why a VMM ended (Exit.Reason). The registry decides
// from it what happens to the domain: stopped, restarted (on_crash,
// on_reboot), forgotten (migrated), suspended (saved).
type ExitReason string

// Exit reasons.
const (
	ExitShutdown  ExitReason = "shutdown"  // asked to stop, or the guest stopped by itself
	ExitDestroyed ExitReason = "destroyed" // stopped at once
	ExitCrashed   ExitReason = "crashed"   // the engine or the guest failed
	// ExitRebooted: the guest rebooted itself; the agent does what the
	// vm.cfg's on_reboot says (restart: a fresh VMM boots it again).
	ExitRebooted ExitReason = "rebooted"
	// ExitFailedToStart: the machine could not be made or started (also
	// after a migration's commit: the target could not start it).
	ExitFailedToStart ExitReason = "failed to start"
	ExitMigrated      ExitReason = "migrated" // the target runs the guest now (Detail: the target)
	ExitSaved         ExitReason = "saved"    // the guest is in a save image (Detail: its path)
	// ExitIncomingAborted: a VMM waiting for a migration ended without a
	// guest: the image failed, or the source aborted.
	ExitIncomingAborted ExitReason = "incoming migration aborted"
	// ExitFenced: the lease's run-until time passed and the engine did
	// not pause within the fence's bound, so the VMM ended the machine at
	// once (SIGKILL for a QEMU child): no write may follow the deadline.
	// The agent never restarts such a domain by itself (its pool decides
	// where it runs next).
	ExitFenced ExitReason = "fenced"
	// ExitVanished is never written by a VMM: the agent gives it to an
	// exit the VMM left no record of (it was killed, or the record is of
	// another run).
	ExitVanished ExitReason = "vanished"
)

// Phase is the phase of a migration or a save as one VMM reports it
// (MigrationStatus.Phase). The agent's own orchestration adds phases
// before and around the VMM's (agent/migration); they are of this type
// too, so that the API reports one vocabulary.
type Phase string

// Migration phases. Source side: Setup, Precopy, StopCopy, Sent,
// Verified, Committing, (InDoubt), Completed; target side: Receiving,
// Verified, Running. Failed and Cancelled end either side.
const (
	PhaseSetup      Phase = "setup"
	PhasePrecopy    Phase = "precopy"
	PhaseStopCopy   Phase = "stop-copy"
	PhaseSent       Phase = "sent"     // image written, waiting for the target's verdict
	PhaseVerified   Phase = "verified" // the target verified the image; waiting for commit
	PhaseCommitting Phase = "committing"
	PhaseInDoubt    Phase = "in-doubt" // commit sent, the target's answer lost
	PhaseCompleted  Phase = "completed"
	PhaseFailed     Phase = "failed"
	PhaseCancelled  Phase = "cancelled"
	PhaseReceiving  Phase = "receiving" // target: reading the image
	PhaseRunning    Phase = "running"   // target: resumed after commit

	// Phases of the sending agent (agent/migration), around the VMM's.
	PhaseConnecting Phase = "connecting" // dialling the target, before any page
	PhaseValidating Phase = "validating" // offline: the target checks the offer
	PhaseCopying    Phase = "copying"    // offline: the disk images stream
)

// Finished says whether p ends a migration: nothing follows it.
func (p Phase) Finished() bool {
	return p == PhaseCompleted || p == PhaseFailed || p == PhaseCancelled
}

// PausesGuest says whether a source VMM in phase p has its guest's vCPUs
// stopped for the migration: from stop-and-copy until the commit's
// outcome (or a failure) resumes it here or ends it.
func (p Phase) PausesGuest() bool {
	switch p {
	case PhaseStopCopy, PhaseSent, PhaseVerified, PhaseCommitting, PhaseInDoubt:
		return true
	}
	return false
}

// Decision is what the agent tells a source VMM once the target has
// verified the image: commit (the target resumes the guest and the
// source ends) or abort (the source resumes it). It crosses the control
// socket as OpMigrateCommit or OpMigrateAbort with Reason, and the page
// stream as pagexfer's Commit or Abort message.
type Decision struct {
	Commit bool
	Reason string // why not, for an abort
}

// Commit is the decision to commit.
func Commit() Decision { return Decision{Commit: true} }

// Abort is the decision to abort, and why.
func Abort(format string, args ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, args...)}
}

func (d Decision) String() string {
	if d.Commit {
		return "commit"
	}
	return "abort: " + d.Reason
}
