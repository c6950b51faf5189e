package agent

import (
	"context"
	"errors"
	"fmt"

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

func (a *Agent) repoTemplates(uuid string) ([]repository.Template, error) {
	return a.repos.Templates(uuid)
}
func (a *Agent) repoISOs(uuid string) ([]repository.ISO, error) { return a.repos.ISOs(uuid) }

// listIn is a handler listing what f finds in the repository named by the
// one parameter (an empty list rather than nil).
func listIn[T any](need func() error, uuidArg func(xmlrpc.Params) (string, error), f func(string) ([]T, error)) xmlrpc.Handler {
	return func(_ context.Context, p xmlrpc.Params) (any, error) {
		if err := need(); err != nil {
			return nil, err
		}
		u, err := uuidArg(p)
		if err != nil {
			return nil, err
		}
		items, err := f(u)
		if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
		}
		if items == nil {
			items = []T{}
		}
		return items, nil
	}
}

func (a *Agent) registerRepositoryMethods(s *xmlrpc.Server) {
	need := func() error {
		if a.repos == nil {
			return xmlrpc.Faultf(xmlrpc.Unsupported, "repositories are not managed by this agent ([repository] enabled = no)")
		}
		return nil
	}
	fault := func(err error) error {
		if err == nil {
			return nil
		}
		return xmlrpc.Faultf(xmlrpc.BadState, "%v", err)
	}
	report := func(f func(context.Context) (repository.Report, error)) xmlrpc.Handler {
		return func(ctx context.Context, p xmlrpc.Params) (any, error) {
			if err := need(); err != nil {
				return nil, err
			}
			if err := p.Want(0); err != nil {
				return nil, err
			}
			rep, err := f(ctx)
			if err != nil {
				return nil, fault(err)
			}
			return rep, nil
		}
	}
	uuidArg := func(p xmlrpc.Params) (string, error) {
		if err := p.Want(1); err != nil {
			return "", err
		}
		u, err := p.String(0)
		if err != nil {
			return "", err
		}
		if err := repository.CheckUUID(u); err != nil {
			return "", xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
		}
		return u, nil
	}
	methods := []xmlrpc.Method{
		{Name: "repository.list", Signatures: [][]string{{"struct"}},
			Help:    "Every repository: uuid, source, options, mount_point, shared (0, 1, C), description, state (mounted, error, in use, unmounted, offline...), error, domains using it, size and free (bytes); plus problems found in the configuration files (file:line).",
			Handler: report(func(ctx context.Context) (repository.Report, error) { return a.repos.Status(ctx) })},
		{Name: "repository.status", Signatures: [][]string{{"struct", "string"}}, Help: "One repository, as repository.list reports it.",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := need(); err != nil {
					return nil, err
				}
				u, err := uuidArg(p)
				if err != nil {
					return nil, err
				}
				st, err := a.repos.Get(ctx, u)
				if err != nil {
					return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%v", err)
				}
				return st, nil
			}},
		{Name: "repository.reload", Signatures: [][]string{{"struct"}}, Help: "Re-read the repositories files and apply the difference now (ovsrepositories reload).",
			Handler: report(func(ctx context.Context) (repository.Report, error) { return a.repos.Reload(ctx) })},
		{Name: "repository.add", Signatures: [][]string{{"struct", "string"}, {"struct", "string", "string"}},
			Help: "Add an existing repository (a source that holds a .ovsrepo) with optional mount options; it is written to the repositories files and mounted.",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := need(); err != nil {
					return nil, err
				}
				if err := p.Between(1, 2); err != nil {
					return nil, err
				}
				src, err := p.String(0)
				if err != nil {
					return nil, err
				}
				opts, err := p.OptString(1, "")
				if err != nil {
					return nil, err
				}
				st, err := a.repos.Add(ctx, src, opts)
				return st, addFault(err, fault)
			}},
		{Name: "repository.remove", Signatures: [][]string{{"struct", "string"}},
			Help: "Unmount a repository and remove it from the repositories files (ovs-offlinerepo -d); refused while running domains use it.",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := need(); err != nil {
					return nil, err
				}
				u, err := uuidArg(p)
				if err != nil {
					return nil, err
				}
				st, err := a.repos.Remove(ctx, u)
				return st, fault(err)
			}},
		{Name: "repository.templates", Signatures: [][]string{{"array", "string"}}, Handler: listIn(need, uuidArg, a.repoTemplates),
			Help: "The templates in a repository's seed_pool: name, path, size, memory, vcpus, and why a template is unusable."},
		{Name: "repository.isos", Signatures: [][]string{{"array", "string"}}, Handler: listIn(need, uuidArg, a.repoISOs),
			Help: "The ISO images in a repository's iso_pool."},
		{Name: "domain.create_from_template", Signatures: [][]string{{"struct", "string", "string", "string"}},
			Help: "Copy template seed_pool/TEMPLATE of repository UUID into running_pool/NAME (fresh UUID, fresh 00:16:3E MACs, sparse copy) and register the domain from it: (uuid, template, name).",
			Handler: func(ctx context.Context, p xmlrpc.Params) (any, error) {
				if err := need(); err != nil {
					return nil, err
				}
				if err := p.Want(3); err != nil {
					return nil, err
				}
				u, err := p.String(0)
				if err != nil {
					return nil, err
				}
				tmpl, err := p.String(1)
				if err != nil {
					return nil, err
				}
				name, err := p.String(2)
				if err != nil {
					return nil, err
				}
				c, err := a.repos.CreateFromTemplate(ctx, u, tmpl, name)
				if err != nil {
					return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%v", err)
				}
				text, source, err := readConfigSource(a.fileRoots(), c.VMCfg)
				if err != nil {
					return nil, err
				}
				in, warnings, err := a.domains.Create(text, source)
				if err != nil {
					return nil, domainFault(fmt.Errorf("%w (the copy is in %s)", err, c.Dir))
				}
				if warnings == nil {
					warnings = []string{}
				}
				return createResult{Info: *in, Warnings: warnings}, nil
			}},
	}
	for _, m := range methods {
		if err := s.Register(m); err != nil {
			panic(fmt.Sprintf("register %s: %v", m.Name, err))
		}
	}
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
