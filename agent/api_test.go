package agent

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
)

// bareAPI is the API of an agent that opened none of its subsystems.
func bareAPI() *xmlrpc.Server {
	return (&Agent{log: zap.NewNop(), audLog: zap.NewNop()}).newRPCServer(&config.Config{})
}

// The API's wrong calls are refused from the declarations alone: the agent
// here has no domain registry, migrations or repositories, so a handler
// that ran would panic (an Internal fault) instead.
func TestAPIRefusesWrongCallsBeforeHandlers(t *testing.T) {
	s := bareAPI()
	for _, tc := range []struct {
		method string
		params xmlrpc.Params
		code   int
		msg    string
	}{
		{"domain.start", nil, xmlrpc.BadParams, "domain.start: expected 1 parameter, got 0; usage: domain.start(name string)"},
		{"domain.shutdown", xmlrpc.Params{"vm1", "60"}, xmlrpc.BadParams, "domain.shutdown: parameter 2 must be an int, got string; usage: domain.shutdown(name string[, timeout int])"},
		{"domain.migrate", xmlrpc.Params{"vm1", "h2", "live"}, xmlrpc.BadParams, "domain.migrate: parameter 3 must be a struct, got string"},
		{"migration.check", xmlrpc.Params{"vm1"}, xmlrpc.BadParams, "migration.check: expected 2 to 3 parameters, got 1"},
		{"repository.status", xmlrpc.Params{int64(1)}, xmlrpc.BadParams, "repository.status: parameter 1 must be a string, got int"},
		{"host.info", xmlrpc.Params{"unexpected"}, xmlrpc.BadParams, "host.info: expected no parameters, got 1"},
		// xend's names answer a wrong call with xend's generic code.
		{"xend.domain.pause", nil, xmlrpc.XendGeneric, "xend.domain.pause: expected 1 parameter, got 0; usage: xend.domain.pause(name string)"},
		{"xend.domain.migrate", xmlrpc.Params{"vm1", "h2", "yes"}, xmlrpc.XendGeneric, "xend.domain.migrate: parameter 3 must be a boolean, got string"},
		{"xend.domains", xmlrpc.Params{"all", int64(1)}, xmlrpc.XendGeneric, "xend.domains: expected 0 to 1 parameters, got 2"},
	} {
		_, err := s.Call(context.Background(), tc.method, tc.params)
		if f := xmlrpc.AsFault(err); f == nil || f.Code != tc.code || !strings.HasPrefix(f.Message, tc.msg) {
			t.Errorf("%s%v = %v\nwant code %d %q", tc.method, tc.params, f, tc.code, tc.msg)
		}
	}
}

// An xend alias is the agent's method under xend's name: the same
// signature, and a help that says so.
func TestXendAliasesShareDeclarations(t *testing.T) {
	s := bareAPI()
	call := func(m string, p ...any) any {
		res, err := s.Call(context.Background(), m, p)
		if err != nil {
			t.Fatalf("%s%v: %v", m, p, err)
		}
		return res
	}
	for alias, target := range map[string]string{
		"xend.domain": "domain.info", "xend.domain.create": "domain.create", "xend.domain.pause": "domain.pause",
		"xend.domain.unpause": "domain.unpause", "xend.domain.destroy": "domain.destroy",
	} {
		if a, m := call("system.methodSignature", alias), call("system.methodSignature", target); xmlrpcString(a) != xmlrpcString(m) {
			t.Errorf("%s signature %v, %s's %v", alias, a, target, m)
		}
		if help := call("system.methodHelp", alias).(string); !strings.HasPrefix(help, "Alias of "+target+", xend's name") {
			t.Errorf("%s help %q", alias, help)
		}
	}
}

func xmlrpcString(v any) string {
	var b strings.Builder
	_ = xmlrpc.EncodeResponse(&b, v)
	return b.String()
}
