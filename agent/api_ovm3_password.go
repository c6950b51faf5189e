package agent

import (
	"context"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/auth"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
)

// passwordEdit serialises the API's edits of agent.ini (config.EditFile
// does not).
var passwordEdit sync.Mutex

func (a *Agent) ovm3PasswordMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	return []xmlrpc.Def{
		{Name: "update_agent_password", Result: xmlrpc.Nil, Run: a.ovm3UpdatePassword,
			Params: []xmlrpc.Param{str("user"), str("password"), xmlrpc.Opt("old_password", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: set the API password (the [auth] password_hash of the agent.ini the agent runs on, as `ovs-agent configure` does) and reload the configuration: from the answer on, the new password logs in and the old one does not. user must be the configured [auth] user (it is not renamed); old_password (agent 3.3), when given, must be the current password. 1 to 72 bytes."},
	}
}

func (a *Agent) ovm3UpdatePassword(_ context.Context, args xmlrpc.Args) (any, error) {
	const method = "update_agent_password"
	st := a.state.Load()
	if st == nil || st.cfg == nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: the agent is still starting", method)
	}
	if user := args.String(0); user != st.cfg.Auth.User {
		if len(user) > 64 {
			user = user[:64] + "..."
		}
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %q is not this agent's API user; the user is [auth] user in agent.ini and is not renamed over the API", method, user)
	}
	if args.Has(2) && !st.verifier.Verify(st.cfg.Auth.User, args.String(2)) {
		return nil, xmlrpc.Faultf(xmlrpc.AuthFailed, "%s: the old password is not the current one; nothing was changed", method)
	}
	h, err := auth.Hash(args.String(1))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %v", method, err)
	}
	path := a.opts.ConfigName
	passwordEdit.Lock()
	defer passwordEdit.Unlock()
	// EditFile would make a missing file from the example; the agent
	// edits only the file it runs on.
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: the agent's configuration %q is not a file it can edit (%v); set the password on the host with `ovs-agent configure`", method, path, err)
	}
	if _, err := config.EditFile(path, []config.Change{{Section: "auth", Key: "password_hash", Value: h}}); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s: %s was not changed: %v", method, path, err)
	}
	a.log.Info("API password changed over the API; reloading", zap.String("config", path))
	if err := a.Reload(); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.InvalidConfig, "%s: the new password hash is in %s, but the reload failed, so the old password stays in force until a reload succeeds: %v", method, path, err)
	}
	return nil, nil
}
