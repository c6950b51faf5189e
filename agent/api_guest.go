package agent

import (
	"context"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// guestMethods are what a running operating system's guest takes from the
// API: a balloon target and keystrokes for its serial console. The audit
// line of a console_input call names the method and the caller, never the
// bytes typed (a password, say).
func (a *Agent) guestMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "domain.set_memory", Result: xmlrpc.Struct, Run: a.apiSetMemory,
			Params:  []xmlrpc.Param{nameParam, xmlrpc.Req("mib", xmlrpc.Int)},
			Aliases: xendAlias("xend.domain.setMemoryTarget"),
			Help: "Give a running qemu domain's guest a new memory target in MiB through its balloon (xm mem-set): at most its maxmem, at least 64 MiB (or its vm.cfg memory when that is lower); growing it must fit in the host's free memory. " +
				"The target lasts while the guest runs: the vm.cfg's memory is left as written and the next start boots with it. Returns the domain's info (memory_target, balloon_bytes)."},
		{Name: "domain.console_input", Result: xmlrpc.Boolean, Run: a.apiConsoleInput,
			Params: []xmlrpc.Param{nameParam, {Name: "data", Type: xmlrpc.Base64, Or: []xmlrpc.Type{xmlrpc.String}}},
			Help:   "Type data (base64 for control characters and escape sequences, or a string) into a running or paused qemu domain's serial console, at most 4096 bytes per call; what the guest prints comes back through domain.console."},
	}
}

func (a *Agent) apiSetMemory(_ context.Context, args xmlrpc.Args) (any, error) {
	name, mib := args.String(0), args.Int(1)
	if mib < 1 || mib > 1<<24 {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "memory target %d MiB: give 1 to %d MiB", mib, 1<<24)
	}
	return a.domainInfo(name, a.domains.SetMemory(name, int(mib)))
}

func (a *Agent) apiConsoleInput(_ context.Context, args xmlrpc.Args) (any, error) {
	var data []byte
	switch v := args.All()[1].(type) {
	case []byte:
		data = v
	case string:
		data = []byte(v)
	}
	if len(data) > control.MaxConsoleInput {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "console input: %d bytes in one call, at most %d: send it in pieces", len(data), control.MaxConsoleInput)
	}
	if err := a.domains.ConsoleInput(args.String(0), data); err != nil {
		return nil, domainFault(err)
	}
	return true, nil
}
