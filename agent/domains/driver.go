package domains

import (
	"context"
	"os"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// VMMDriver runs the VMM process of a domain: it starts one (boot,
// restore, incoming migration), finds one again after an agent restart
// from the handle the registry persisted, and says how a VMM it could not
// find again ended. The real driver is vmmproc's (ovs-vmm processes);
// the registry's tests use a fake.
type VMMDriver interface {
	// Start runs a VMM and returns once it answers. With a nil VMM
	// nothing runs; with a VMM and an error it ran but did not answer
	// (vmmproc.ErrEnded, or ctx's error: it was killed), and its exit
	// comes on Wait.
	Start(ctx context.Context, s vmmproc.Spec) (VMM, error)
	// Recover re-attaches to the VMM that answers on h's socket for h's
	// UUID (h's pid and start time are not checked: the VMM's own are
	// taken); an error says why it cannot.
	Recover(ctx context.Context, h vmmproc.Handle) (VMM, error)
	// Exited is the exit record the VMM of h left, or one with reason
	// control.ExitVanished when it left none.
	Exited(h vmmproc.Handle) control.Exit
}

// VMM is one running VMM process.
type VMM interface {
	// Handle is what the registry persists of it (pid, start time as the
	// VMM reports them).
	Handle() vmmproc.Handle
	// Wait delivers the exit record once the VMM has ended, then closes;
	// it closes without one when the VMM is released.
	Wait() <-chan control.Exit
	// Inspect reads the VMM's Info: its state and counters.
	Inspect(ctx context.Context) (*control.Info, error)
	// Call makes a control call, passing files along.
	Call(ctx context.Context, req control.Request, files ...*os.File) (*control.Response, error)
	// SetLease gives the VMM the domain's lease (control.OpLease) and
	// returns its Info after it; a generation lower than the VMM's is
	// refused.
	SetLease(ctx context.Context, runUntil control.Monotonic, generation int64) (*control.Info, error)
	// Stop asks the VMM to end: cleanly, or at once with force.
	Stop(ctx context.Context, force bool) error
	// Kill ends the process at once.
	Kill() error
	// Release lets go of the VMM without stopping it.
	Release()
}

// processes is the real driver as a VMMDriver (a *vmmproc.VMM is a VMM,
// but Go wants the method results to say so).
type processes struct{ *vmmproc.Driver }

func (p processes) Start(ctx context.Context, s vmmproc.Spec) (VMM, error) {
	v, err := p.Driver.Start(ctx, s)
	if v == nil {
		return nil, err
	}
	return v, err
}

func (p processes) Recover(ctx context.Context, h vmmproc.Handle) (VMM, error) {
	v, err := p.Driver.Recover(ctx, h)
	if v == nil {
		return nil, err
	}
	return v, err
}
