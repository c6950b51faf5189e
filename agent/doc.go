// Package agent is the ovs-agent daemon, the composition root of the
// running service: it serves the XML-RPC API on TCP (HTTPS by default) and
// on a local unix socket, applies the allow/deny address rules and the API
// password, writes one audit line per call, and integrates with the
// service manager (sd_notify readiness, reload on SIGHUP, watchdog, socket
// activation, graceful stop on SIGTERM). It wires the domain registry
// (agent/domains), migrations (agent/migration), the relocation listener
// (relocation) and the repositories (repository) into API methods, and,
// when [pool] names a pool, keeps the agent a member of it while it runs
// (poollink.go over agent/pool; host.info shows the membership), runs
// the pool domains the master hands it (pooldomains.go: pool.start_local
// and pool.stop_local, api_poollocal.go; pooladopt.go: pool.adopt_local,
// a domain running here taken into the pool; each owned domain's VMM gets the
// lease at every renewal; a join reconciles what runs here with the owner
// keys in etcd, destroying what this agent no longer owns), takes part in
// the mastership (agent/poolmaster's Runner) and serves the pool API
// (api_poolmaster.go: reads from etcd, changes on the master or forwarded
// to it). Of
// migration it keeps only the composition (agent/migration.Local built with
// the registry, the repositories and a context that ends when the agent
// stops) and the dispatch of an authenticated relocation connection on its
// op (relocate.go); both sides of migration live in agent/migration.
//
// The API is declared per namespace: agent (api_agent.go), host
// (api_host.go), domain (api_domains.go), migration (api_migration.go,
// where live or offline is decided once), repository (repos.go), the pool
// member's pool.start_local and pool.stop_local (api_poollocal.go) and xend's
// legacy names (api_xend.go, aliases of the same declarations where the
// parameters agree), and the Oracle VM Agent 3 names Apache CloudStack's
// OVM3 plugin calls (api_ovm3*.go: bare names such as discover_server and
// start_vm; their wire shapes are agent/ovm3's; each is mapped onto the
// agent's own methods, called through the same dispatcher, or onto the
// registry, repositories and host facts they use; VMs are addressed as
// (repository, vm) at VirtualMachines/<vm>/vm.cfg of a repository, and
// /OVS/Repositories/<id> names a repository mounted here); api.go composes
// them. agent/xmlrpc checks every call
// against its declaration before the handler runs; handlers translate the
// registry's and migration's errors into fault codes, once, at this edge.
//
// Run is the agent's life in named steps: loadConfig, openSubsystems (the
// state directory's lock, repositories, domain registry, migrations),
// serve (API and relocation listeners, PID file, readiness), waitForSignals
// (SIGHUP reloads), drain; what each opens is closed in reverse order. The
// agent's lifetime context, cancelled when Run returns and before the
// registry closes, is for the work that outlives a call. Its TLS identity
// is agent/tlscert.
//
// The agent holds no guest memory: domains run in ovs-vmm processes. It may
// import config, vmm, repository and relocation; nothing imports it but cmd.
package agent
