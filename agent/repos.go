package agent

import (
	"context"
	"errors"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/repository"
)

// RepositoryOptions maps the [repository] section onto the manager's
// options (used by the agent and by `ovs-agent repo`).
func RepositoryOptions(cfg *config.Config) repository.Options {
	r := cfg.Repository
	return repository.Options{
		Root: r.Root, StagingDir: r.StagingDir, RepositoriesFile: r.RepositoriesFile, OptionsFile: r.OptionsFile,
		StateFile: r.StateFile, MountTimeout: r.MountTimeout, HeartbeatInterval: r.HeartbeatInterval,
	}
}

// reposInUse tells the repository manager which domains use a repository.
// Until the domain registry is loaded every repository counts as in use,
// so that nothing is unmounted under a domain the agent has not found yet.
func (a *Agent) reposInUse(uuid string) []string {
	if a.domains == nil {
		return []string{"(the agent is still loading its domains)"}
	}
	return a.domains.UsingRepository(uuid)
}

// repositoryMethods is the repository namespace: the storage repositories
// mounted under /OVS, their templates and ISO images, and a domain copied
// from a template.
func (a *Agent) repositoryMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "repository.list", Result: xmlrpc.Struct, Run: a.repoReport((*repository.Manager).Status),
			Help: "Every repository: uuid, source, options, mount_point, shared (0, 1, C), description, state (mounted, error, in use, unmounted, offline...), error, domains using it, size and free (bytes); plus problems found in the configuration files (file:line)."},
		{Name: "repository.status", Result: xmlrpc.Struct, Params: []xmlrpc.Param{uuidParam}, Run: a.apiRepoStatus,
			Help: "One repository, as repository.list reports it."},
		{Name: "repository.reload", Result: xmlrpc.Struct, Run: a.repoReport((*repository.Manager).Reload),
			Help: "Re-read the repositories files and apply the difference now (ovsrepositories reload)."},
		{Name: "repository.add", Result: xmlrpc.Struct, Run: a.apiRepoAdd,
			Params: []xmlrpc.Param{xmlrpc.Req("source", xmlrpc.String), xmlrpc.Opt("options", xmlrpc.String)},
			Help:   "Add an existing repository (a source that holds a .ovsrepo) with optional mount options; it is written to the repositories files and mounted."},
		{Name: "repository.remove", Result: xmlrpc.Struct, Params: []xmlrpc.Param{uuidParam}, Run: a.apiRepoRemove,
			Help: "Unmount a repository and remove it from the repositories files (ovs-offlinerepo -d); refused while running domains use it."},
		{Name: "repository.templates", Result: xmlrpc.Array, Params: []xmlrpc.Param{uuidParam}, Run: listIn(a, (*repository.Manager).Templates),
			Help: "The templates in a repository's seed_pool: name, path, size, memory, vcpus, and why a template is unusable."},
		{Name: "repository.isos", Result: xmlrpc.Array, Params: []xmlrpc.Param{uuidParam}, Run: listIn(a, (*repository.Manager).ISOs),
			Help: "The ISO images in a repository's iso_pool."},
		{Name: "repository.secondary_list", Result: xmlrpc.Array, Run: a.apiSecondaryList,
			Help: "The file systems mounted in [agent] secondary_storage_dir (by agent 3's storage_plugin_mount at /nfsmnt/<name>: a manager's secondary storage): name, mount_point, source, fs_type, options, size and free (bytes), as the mount table shows them."},
		{Name: "repository.secondary_unmount", Result: xmlrpc.Struct, Params: []xmlrpc.Param{nameParam}, Run: a.apiSecondaryUnmount,
			Help: "Unmount the file system mounted at [agent] secondary_storage_dir/NAME and remove its folder; refused while it is busy (a domain's ISO image). Answers what was mounted."},
		{Name: "domain.create_from_template", Result: xmlrpc.Struct, Run: a.apiCreateFromTemplate,
			Params: []xmlrpc.Param{uuidParam, xmlrpc.Req("template", xmlrpc.String), nameParam},
			Help:   "Copy template seed_pool/TEMPLATE of repository UUID into running_pool/NAME (fresh UUID, fresh 00:16:3E MACs, sparse copy) and register the domain from it: (uuid, template, name)."},
	}
}

// needRepos refuses repository methods on an agent that does not manage
// repositories.
func (a *Agent) needRepos() error {
	if a.repos == nil {
		return xmlrpc.Faultf(xmlrpc.Unsupported, "repositories are not managed by this agent ([repository] enabled = no)")
	}
	return nil
}

// repoUUID is the repository UUID of parameter 1, checked, on an agent
// that manages repositories.
func (a *Agent) repoUUID(args xmlrpc.Args) (string, error) {
	if err := a.needRepos(); err != nil {
		return "", err
	}
	u := args.String(0)
	if err := repository.CheckUUID(u); err != nil {
		return "", xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	}
	return u, nil
}

// repoStateFault is the fault for a repository operation that failed.
func repoStateFault(err error) error {
	if err == nil {
		return nil
	}
	return xmlrpc.Faultf(xmlrpc.BadState, "%v", err)
}

// repoReport is a method answering with the report op returns.
func (a *Agent) repoReport(op func(*repository.Manager, context.Context) (repository.Report, error)) func(context.Context, xmlrpc.Args) (any, error) {
	return func(ctx context.Context, _ xmlrpc.Args) (any, error) {
		if err := a.needRepos(); err != nil {
			return nil, err
		}
		rep, err := op(a.repos, ctx)
		if err != nil {
			return nil, repoStateFault(err)
		}
		return rep, nil
	}
}

// listIn is a method listing what f finds in the repository named by the
// one parameter (an empty list rather than nil).
func listIn[T any](a *Agent, f func(*repository.Manager, string) ([]T, error)) func(context.Context, xmlrpc.Args) (any, error) {
	return func(_ context.Context, args xmlrpc.Args) (any, error) {
		u, err := a.repoUUID(args)
		if err != nil {
			return nil, err
		}
		items, err := f(a.repos, u)
		if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
		}
		if items == nil {
			items = []T{}
		}
		return items, nil
	}
}

func (a *Agent) apiRepoStatus(ctx context.Context, args xmlrpc.Args) (any, error) {
	u, err := a.repoUUID(args)
	if err != nil {
		return nil, err
	}
	st, err := a.repos.Get(ctx, u)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
	}
	return st, nil
}

func (a *Agent) apiRepoAdd(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	st, err := a.repos.Add(ctx, args.String(0), args.String(1))
	return st, addFault(err, repoStateFault)
}

func (a *Agent) apiRepoRemove(ctx context.Context, args xmlrpc.Args) (any, error) {
	u, err := a.repoUUID(args)
	if err != nil {
		return nil, err
	}
	st, err := a.repos.Remove(ctx, u)
	return st, repoStateFault(err)
}

func (a *Agent) apiSecondaryList(context.Context, xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	dir := a.secondaryDir()
	if dir == "" {
		return []repository.SecondaryMount{}, nil
	}
	list, err := a.repos.SecondaryMounts(dir)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	if list == nil {
		list = []repository.SecondaryMount{}
	}
	return list, nil
}

func (a *Agent) apiSecondaryUnmount(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	dir := a.secondaryDir()
	if dir == "" {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "no secondary mounts here: [agent] secondary_storage_dir is empty")
	}
	was, err := a.repos.UnmountSecondary(ctx, dir, args.String(0))
	if err != nil {
		return nil, secondaryFault("repository.secondary_unmount", err)
	}
	return was, nil
}

func (a *Agent) apiCreateFromTemplate(ctx context.Context, args xmlrpc.Args) (any, error) {
	if err := a.needRepos(); err != nil {
		return nil, err
	}
	c, err := a.repos.CreateFromTemplate(ctx, args.String(0), args.String(1), args.String(2))
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	}
	text, source, err := readConfigSource(a.fileRoots(), c.VMCfg)
	if err != nil {
		return nil, err
	}
	return a.create(text, source, c.Dir)
}

// addFault translates a repository.add error: bad source or options input
// is a parameter fault, a source that holds no repository an invalid
// configuration, one configured already Exists; anything else falls to
// fallback (a state fault).
func addFault(err error, fallback func(error) error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, repository.ErrBadInput):
		return xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
	case errors.Is(err, repository.ErrNotRepository):
		return xmlrpc.Faultf(xmlrpc.InvalidConfig, "%v", err)
	case errors.Is(err, repository.ErrConfigured):
		return xmlrpc.Faultf(xmlrpc.Exists, "%v", err)
	}
	return fallback(err)
}
