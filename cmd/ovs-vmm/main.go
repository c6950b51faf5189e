// Command ovs-vmm runs one domain: the agent starts one per running domain,
// in its own session, so that the domain outlives the agent. It owns guest
// memory, the vCPUs and the console, runs the page-transfer sender or
// receiver of a migration, and answers the agent on its control socket.
// Exit status: 0 after a clean shutdown, destroy, migration or save, 1 when
// the machine could not start, 2 when it crashed, 3 when an incoming
// migration was aborted. Why it ended is also written to exit.json in the
// domain directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"go.uber.org/zap"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfgPath := flag.String("config", "", "the domain's vm.cfg")
	engine := flag.String("engine", vmm.EngineKVM, "engine: kvm, sim or qemu")
	binary := flag.String("engine-binary", "", "the engine's program (qemu: qemu-system-x86_64); \"\" for its default")
	accel := flag.String("accel", "", "the qemu engine's accelerator: kvm or tcg; \"\" to probe")
	backing := flag.String("memory-backing", "", "the guest memory's pages: auto, 4k, hugetlb or thp; \"\" for the vm.cfg's memory_backing (auto without one)")
	dir := flag.String("dir", "", "the domain's directory (console.log, exit.json)")
	socket := flag.String("socket", "", "control socket path")
	incoming := flag.Bool("incoming", false, "wait for an incoming migration instead of booting")
	restore := flag.String("restore", "", "start from this save image instead of booting")
	runUntil := flag.Int64("run-until", 0, "the lease's run-until time, CLOCK_BOOTTIME nanoseconds: the guest is fenced past it (0: no fencing)")
	generation := flag.Int64("generation", 0, "the generation of the domain's owner (a pool's owner key revision)")
	host := flag.String("host", "", "this host's name in the domain's pool (its member name); \"\" for the system's host name")
	man := flag.String("man", "", "write the manual page ovs-vmm.8 into this directory and exit")
	flag.Parse()
	if *man != "" {
		return writeManPage(*man, flag.CommandLine)
	}
	if *cfgPath == "" || *dir == "" || *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: ovs-vmm --config VM.CFG --dir DIR --socket PATH [--engine kvm|sim|qemu] [--engine-binary PATH] [--accel kvm|tcg]")
		return 2
	}
	// The agent may go away; never die of a closed pipe or a hang-up.
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP)

	failed := func(err error) int {
		fmt.Fprintf(os.Stderr, "ovs-vmm: %v\n", err)
		_ = control.WriteExit(filepath.Join(*dir, control.ExitFile), control.Exit{
			Time: time.Now().UTC(), PID: os.Getpid(), Reason: control.ExitFailedToStart, Detail: err.Error(), Code: 1,
		})
		return 1
	}
	cfg, err := vmcfg.ParseFile(*cfgPath)
	if err != nil {
		return failed(err)
	}
	opts := vmm.OptionsFromConfig(cfg, *engine, *dir, *socket)
	opts.EngineBinary, opts.Accel = *binary, *accel
	if *backing != "" {
		opts.MemoryBacking = *backing
	}
	opts.RunUntil, opts.Generation, opts.Host = control.Monotonic(*runUntil), *generation, *host
	if *generation < 0 {
		return failed(fmt.Errorf("--generation %d: a generation is never negative", *generation))
	}
	switch {
	case *incoming && *restore != "":
		return failed(fmt.Errorf("--incoming and --restore exclude each other"))
	case *incoming:
		opts.Mode = vmm.ModeIncoming
	case *restore != "":
		opts.Mode, opts.RestorePath = vmm.ModeRestore, *restore
	}
	// The VMM's own log lines go to stderr, which the agent keeps in the
	// domain's log.
	if log, err := zap.NewProduction(); err == nil {
		defer log.Sync()
		opts.Log = log.With(zap.String("domain", opts.Name))
	}
	v, err := vmm.Start(opts)
	if err != nil {
		return failed(err)
	}
	defer v.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	e := v.Serve(ctx)
	fmt.Fprintf(os.Stderr, "ovs-vmm: %s %s\n", e.Reason, e.Detail)
	return e.Code
}
