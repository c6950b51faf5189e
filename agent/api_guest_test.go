package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Console input beyond control.MaxConsoleInput and a memory target out of
// range are refused by the API with a fault that says the limit, before
// the registry is asked (the agent here has none: a call that reached it
// would panic, an Internal fault).
func TestGuestMethodsRefuseWhatIsOutOfRange(t *testing.T) {
	s := bareAPI()
	for _, tc := range []struct {
		method string
		params xmlrpc.Params
		msg    string
	}{
		{"domain.console_input", xmlrpc.Params{"vm1", make([]byte, control.MaxConsoleInput+1)}, "console input: 4097 bytes in one call, at most 4096: send it in pieces"},
		{"domain.console_input", xmlrpc.Params{"vm1", strings.Repeat("x", control.MaxConsoleInput+1)}, "console input: 4097 bytes in one call, at most 4096"},
		{"domain.set_memory", xmlrpc.Params{"vm1", int64(0)}, "memory target 0 MiB: give 1 to 16777216 MiB"},
		{"xend.domain.setMemoryTarget", xmlrpc.Params{"vm1", int64(-5)}, "memory target -5 MiB"},
	} {
		_, err := s.Call(context.Background(), tc.method, tc.params)
		f := xmlrpc.AsFault(err)
		if f == nil || !strings.HasPrefix(f.Message, tc.method+": "+tc.msg) || f.Code == xmlrpc.Internal {
			t.Errorf("%s: %v, want a fault starting %q", tc.method, err, tc.msg)
		}
	}
}
