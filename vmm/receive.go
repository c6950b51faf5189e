package vmm

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// attach takes one more connection of migration id.
func (in *incoming) attach(id string, f *os.File) control.Response {
	defer f.Close()
	if s := in.status(); s.ID != id || s.Phase != control.PhaseReceiving {
		return control.Response{Error: fmt.Sprintf("no incoming migration %s is receiving here (this VMM has %s, %s)", id, s.ID, s.Phase)}
	}
	c, err := net.FileConn(f)
	if err != nil {
		return control.Response{Error: "migration connection: " + err.Error()}
	}
	select {
	case in.extra <- c:
	default:
		c.Close()
		return control.Response{Error: fmt.Sprintf("migration %s has all the connections it can take", id)}
	}
	st := in.status()
	return control.Response{Migration: &st}
}

// more hands the receiver the next attached connection.
func (in *incoming) more(used *[]net.Conn) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		t := time.NewTimer(attachTimeout)
		defer t.Stop()
		select {
		case c := <-in.extra:
			*used = append(*used, c)
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("no connection attached within %s", attachTimeout)
		}
	}
}

// closeExtra closes the connections attached too late or too many.
func (in *incoming) closeExtra() {
	for {
		select {
		case c := <-in.extra:
			c.Close()
		default:
			return
		}
	}
}

func (v *VMM) startReceive(req control.Request, f *os.File) control.Response {
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return control.Response{Error: "migration connection: " + err.Error()}
	}
	in := &incoming{extra: make(chan net.Conn, pagexfer.MaxStreams), progress: req.ProgressTimeout}
	in.phases = phases{role: control.TargetVMM, log: v.log,
		st: control.MigrationStatus{ID: req.Migration, Phase: control.TargetVMM.First(), Live: req.Live}}
	v.mu.Lock()
	v.in = in
	v.mu.Unlock()
	go v.receive(in, conn)
	st := in.status()
	return control.Response{Migration: &st}
}

// receive has the engine read the image and build the machine, then runs
// the target's side of the commit: Verified, wait for Commit, start the
// guest, Resumed.
func (v *VMM) receive(in *incoming, conn net.Conn) {
	defer conn.Close()
	defer in.closeExtra()
	img, err := v.receiveImage(in, conn)
	if err == nil {
		// An incoming VMM whose lease has run out takes nothing: the
		// source keeps the guest (see lease.go).
		if why := v.leaseLapsed(); why != "" {
			err = fmt.Errorf("target: %s; the image is not taken", why)
		}
	}
	if err != nil {
		_ = pagexfer.WriteFailed(conn, img.ID, err.Error())
		v.abortIncoming(in, err)
		return
	}
	if err := pagexfer.WriteVerified(conn, img.ID, pagexfer.Stats{Totals: img.Totals}); err != nil {
		v.abortIncoming(in, err)
		return
	}
	in.move(control.PhaseVerified, func(st *control.MigrationStatus) { st.Error = "" })
	conn.SetReadDeadline(time.Now().Add(commitTimeout))
	if err := pagexfer.AwaitCommit(conn, img.ID); err != nil {
		v.abortIncoming(in, err)
		return
	}
	conn.SetReadDeadline(time.Time{})
	if why := v.leaseLapsed(); why != "" {
		// Commit came after our lease ran out: refusing it leaves the
		// guest with the source, which resumes it (a remote error
		// after commit says the target discarded its copy).
		err := fmt.Errorf("target: %s; the commit is refused", why)
		_ = pagexfer.WriteResumeFailed(conn, img.ID, err.Error())
		v.abortIncoming(in, err)
		return
	}
	if err := v.engine.Start(); err != nil {
		_ = pagexfer.WriteResumeFailed(conn, img.ID, err.Error())
		in.fail(control.PhaseFailed, err)
		v.end(control.Exit{Reason: control.ExitFailedToStart, Detail: "after migration: " + err.Error(), Code: 1})
		return
	}
	v.running()
	if err := pagexfer.WriteResumed(conn, img.ID); err != nil {
		// The guest runs here now whatever the source heard: its agent
		// will ask ours.
		in.move(control.PhaseRunning, func(st *control.MigrationStatus) {
			st.Error = "the source did not get our answer: " + err.Error()
		})
		return
	}
	in.move(control.PhaseRunning, func(st *control.MigrationStatus) { st.Error = "" })
}

// receiveImage has the engine read the image from conn (and the attached
// connections) and build the machine from it. A source that stops
// sending fails the image after the progress timeout; the commit exchange
// after it keeps its own bounds. Finishing the machine before saying
// verified means that after the commit only its start stands between the
// source's pause and our resume; a machine that cannot be built fails the
// image while the source can still resume.
func (v *VMM) receiveImage(in *incoming, conn net.Conn) (Image, error) {
	var extra []net.Conn
	rec, err := v.engine.Receive(context.Background(), conn, in.more(&extra), ReceiveOptions{ProgressTimeout: in.progress})
	// The other streams carry nothing after the image.
	for _, c := range extra {
		c.Close()
	}
	in.update(rec.Figures)
	_ = conn.SetReadDeadline(time.Time{})
	return rec.Image, err
}

// abortIncoming ends an incoming VMM whose migration failed before the
// guest ran here: the source copy stays authoritative.
func (v *VMM) abortIncoming(in *incoming, err error) {
	in.fail(control.PhaseFailed, err)
	_ = v.engine.Stop()
	v.end(control.Exit{Reason: control.ExitIncomingAborted, Detail: err.Error(), Code: 3})
}
