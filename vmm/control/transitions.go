package control

import "fmt"

// The phases of one migration, who moves them, and which may follow
// which. One table per role; Move checks a step against it, and the VMM
// and the agent move their phases only through it.
// At the end of the file: the VMM's own states and their steps
// (StateStep), fenced among them.
//
// A live migration (source agent A with source VMM, target agent B with
// target VMM; the page stream and its commit messages go VMM to VMM over
// the relocation connections that the agents dialled and handed over):
//
//	 A (agent/migration)     source VMM                target VMM          B (agent)
//	 connecting ──dial, hello──────────────────────────────────────────▶ checks, starts
//	     │                                                                VMM --incoming
//	     │ hand over conns ─▶ setup                     receiving ◀──── hands conns
//	     │                    precopy ══ pages ════════▶  │ (applies)
//	     │                    stop-copy (guest paused)    │
//	     │                    sent ═══ last pages, state ▶│ checks every page
//	     │                    verified ◀════ Verified ════ verified (machine built)
//	     │  (auto-commit or   committing ═══ Commit ═════▶ running (guest resumed)
//	     │   OpMigrateCommit) completed ◀═══ Resumed ═════ │
//	     │                    (VMM ends: migrated)          │
//	 completed (domain forgotten here)                      domain registered
//
// Any failure before Commit is sent ends the source side failed (or
// cancelled) with the guest resumed on the source, and the target side
// failed with its VMM ended: the source copy is authoritative until then.
// A Commit whose answer is lost leaves the source in-doubt, paused, until
// the agent asks the target's agent where the guest runs (OpMigrateResolve).
//
// A save is the source side written to a file: setup, stop-copy, sent,
// completed (the VMM ends: saved). A restore has no phases: the VMM starts
// from the image or fails to start.
//
// An offline migration (a stopped domain and its disks) is the agent's
// alone: connecting, validating (the target checks the offer), copying
// (filexfer), verified (every digest matched), committing (the target
// registers the domain), completed; failed or cancelled before the
// commit leave the domain here as it was.
//
// Receiver state diagram of the target VMM:
//
//	receiving ──image checked, machine built──▶ verified ──Commit──▶ running
//	    │                                          │
//	    └──bad page, short stream, timeout─────────┴──Abort, timeout──▶ failed
//
// Source VMM:
//
//	setup ─▶ precopy ─▶ stop-copy ─▶ sent ─▶ verified ─▶ committing ─▶ completed
//	  │         │           │          │         │             │  ▲
//	  └─────────┴───────────┴──────────┴─────────┴─▶ failed    ▼  │
//	                         cancelled ◀─(cancel, until commit)  in-doubt ─▶ failed

// Role names whose phases a table describes.
type Role int

// Roles.
const (
	// SourceVMM: the VMM sending a live or non-live migration.
	SourceVMM Role = iota
	// SaveVMM: the VMM writing a save image.
	SaveVMM
	// TargetVMM: the VMM receiving a migration.
	TargetVMM
	// SourceAgent: the sending agent's view of a live or non-live
	// migration (it polls the source VMM, so it may see phases skipped).
	SourceAgent
	// OfflineAgent: the sending agent running an offline migration.
	OfflineAgent
)

func (r Role) String() string {
	switch r {
	case SourceVMM:
		return "source VMM"
	case SaveVMM:
		return "saving VMM"
	case TargetVMM:
		return "target VMM"
	case SourceAgent:
		return "source agent"
	case OfflineAgent:
		return "offline migration"
	}
	return fmt.Sprintf("role %d", int(r))
}

// The steps each role may take. A phase may always stay as it is (a
// progress update); Failed, Cancelled and Completed end a migration.
var (
	sourceVMMSteps = map[Phase][]Phase{
		PhaseSetup:      {PhasePrecopy, PhaseStopCopy, PhaseSent, PhaseFailed, PhaseCancelled},
		PhasePrecopy:    {PhaseStopCopy, PhaseSent, PhaseFailed, PhaseCancelled},
		PhaseStopCopy:   {PhaseSent, PhaseFailed, PhaseCancelled},
		PhaseSent:       {PhaseVerified, PhaseFailed, PhaseCancelled},
		PhaseVerified:   {PhaseCommitting, PhaseFailed, PhaseCancelled},
		PhaseCommitting: {PhaseCompleted, PhaseInDoubt, PhaseFailed},
		PhaseInDoubt:    {PhaseCompleted, PhaseFailed},
	}
	saveVMMSteps = map[Phase][]Phase{
		PhaseSetup:    {PhaseStopCopy, PhaseSent, PhaseCompleted, PhaseFailed, PhaseCancelled},
		PhaseStopCopy: {PhaseSent, PhaseCompleted, PhaseFailed, PhaseCancelled},
		PhaseSent:     {PhaseCompleted, PhaseFailed, PhaseCancelled},
	}
	targetVMMSteps = map[Phase][]Phase{
		PhaseReceiving: {PhaseVerified, PhaseFailed},
		PhaseVerified:  {PhaseRunning, PhaseFailed},
	}
	offlineAgentSteps = map[Phase][]Phase{
		PhaseConnecting: {PhaseValidating, PhaseFailed, PhaseCancelled},
		PhaseValidating: {PhaseCopying, PhaseFailed, PhaseCancelled},
		PhaseCopying:    {PhaseVerified, PhaseFailed, PhaseCancelled},
		PhaseVerified:   {PhaseCommitting, PhaseFailed, PhaseCancelled},
		PhaseCommitting: {PhaseCompleted, PhaseFailed, PhaseCancelled},
	}
	// The source agent sees the source VMM's phases through polling, so
	// it may see any later phase of the VMM's table next; before the VMM
	// has one it is connecting.
	sourceAgentSteps = agentView(sourceVMMSteps)
)

// agentView is the transitive closure of steps, with PhaseConnecting
// leading to every phase.
func agentView(steps map[Phase][]Phase) map[Phase][]Phase {
	out := map[Phase][]Phase{}
	var reach func(p Phase, seen map[Phase]bool)
	reach = func(p Phase, seen map[Phase]bool) {
		for _, q := range steps[p] {
			if !seen[q] {
				seen[q] = true
				reach(q, seen)
			}
		}
	}
	all := map[Phase]bool{}
	for p := range steps {
		seen := map[Phase]bool{}
		reach(p, seen)
		for q := range seen {
			out[p] = append(out[p], q)
			all[q] = true
		}
		all[p] = true
	}
	for q := range all {
		out[PhaseConnecting] = append(out[PhaseConnecting], q)
	}
	return out
}

func (r Role) steps() map[Phase][]Phase {
	switch r {
	case SourceVMM:
		return sourceVMMSteps
	case SaveVMM:
		return saveVMMSteps
	case TargetVMM:
		return targetVMMSteps
	case SourceAgent:
		return sourceAgentSteps
	case OfflineAgent:
		return offlineAgentSteps
	}
	return nil
}

// First is the phase a migration of this role starts in.
func (r Role) First() Phase {
	switch r {
	case SourceVMM, SaveVMM:
		return PhaseSetup
	case TargetVMM:
		return PhaseReceiving
	}
	return PhaseConnecting
}

// Legal says whether role r may go from phase from to phase to.
func (r Role) Legal(from, to Phase) bool {
	if from == to {
		return true
	}
	for _, q := range r.steps()[from] {
		if q == to {
			return true
		}
	}
	return false
}

// Move returns to when role r may go there from from, and an error that
// names both phases otherwise (the caller keeps from).
func (r Role) Move(from, to Phase) (Phase, error) {
	if !r.Legal(from, to) {
		return from, fmt.Errorf("%s: a migration in phase %s cannot go to %s", r, from, to)
	}
	return to, nil
}

// The VMM's states and which may follow which. A VMM changes its state
// only through StateStep:
//
//	incoming ──machine started──▶ running ◀──resume──▶ paused
//	                                │  ▲                 ▲
//	          run-until time passed │  │ lease renewed   │ the operator's pause
//	                                ▼  │ (future time)   │ takes a fenced guest over
//	                               fenced ───────────────┘
//
// and every state may go to stopping (shutdown, destroy, the guest left).
// Stopping leaves only to fenced: a guest asked to power off (shutdown,
// the ACPI button) runs until it has, and one still running when its
// run-until time passes is fenced like any other (a renewal gives it back
// to stopping). A VMM that is ending (destroy, migrated, saved, its
// machine gone) is not fenced: it has nothing left that runs.
// An operator-paused guest whose run-until time passes stays paused (it
// writes nothing already) but may not resume until a lease in the future
// comes; a renewed lease resumes only a guest the VMM fenced itself,
// never one the operator paused.
var vmmStateSteps = map[State][]State{
	StateIncoming: {StateRunning, StateFenced, StateStopping},
	StateRunning:  {StatePaused, StateFenced, StateStopping},
	StatePaused:   {StateRunning, StateStopping},
	StateFenced:   {StateRunning, StatePaused, StateStopping},
	StateStopping: {StateFenced},
}

// StateStep returns to when a VMM in state from may go there, and an
// error naming both states otherwise (the caller keeps from).
func StateStep(from, to State) (State, error) {
	if from == to {
		return to, nil
	}
	for _, s := range vmmStateSteps[from] {
		if s == to {
			return to, nil
		}
	}
	return from, fmt.Errorf("a VMM that is %s cannot become %s", from, to)
}
