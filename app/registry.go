package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Module is a running part of the process: a role (auth, chat, ingest) or a
// piece of shared infrastructure (redis, store). Start returns once the
// module is serving (background loops keep running until Stop); Stop drains
// within ctx's deadline.
type Module interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Checker is implemented by modules with a readiness check; /readyz reports
// each one under the module's name.
type Checker interface {
	Check(ctx context.Context) error
}

// Registration describes a module to the runtime.
type Registration struct {
	// Name is unique; for roles it is what --roles accepts.
	Name string
	// Role marks modules a user can pick with --roles. Others (redis, store)
	// run only as dependencies.
	Role bool
	// Deps names the modules that must be running before this one starts,
	// and stopped only after it.
	Deps []string
	// New builds the module. It runs after every dependency has started, so
	// it can use the Host's clients and register HTTP routes on Host.Mux.
	New func(ctx context.Context, h *Host) (Module, error)
}

var (
	regMu    sync.Mutex
	registry = map[string]Registration{}
)

// Register adds a module; modules call it from init. An empty or duplicate
// name, or a missing constructor, is a programming error and panics.
func Register(r Registration) {
	regMu.Lock()
	defer regMu.Unlock()
	if r.Name == "" || r.New == nil {
		panic("app: Register needs a name and a constructor")
	}
	if _, dup := registry[r.Name]; dup {
		panic(fmt.Sprintf("app: module %q registered twice", r.Name))
	}
	registry[r.Name] = r
}

// Roles lists the registered role names, sorted.
func Roles() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var names []string
	for n, r := range registry {
		if r.Role {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// plan returns the registrations needed for targets, dependencies first, in
// a stable order. It fails on an unknown target, an unknown dependency or a
// dependency cycle.
func plan(targets []string) ([]Registration, error) {
	regMu.Lock()
	defer regMu.Unlock()
	var (
		order []Registration
		state = map[string]int{} // 1 visiting, 2 done
		visit func(name string, path []string) error
	)
	visit = func(name string, path []string) error {
		r, ok := registry[name]
		if !ok {
			return fmt.Errorf("unknown module %q (needed by %s)", name, strings.Join(path, " -> "))
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(path, " -> "), name)
		case 2:
			return nil
		}
		state[name] = 1
		deps := append([]string(nil), r.Deps...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, r)
		return nil
	}
	for _, t := range targets {
		r, ok := registry[t]
		if !ok || !r.Role {
			var valid []string
			for n, r := range registry {
				if r.Role {
					valid = append(valid, n)
				}
			}
			sort.Strings(valid)
			return nil, fmt.Errorf("unknown role %q (valid roles: %s)", t, strings.Join(valid, ", "))
		}
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
