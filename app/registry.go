package app

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Module is a running part of the process: a role (auth, chat, ingest) or a
// piece of shared infrastructure (redis, store, tokens: app/infra). Start returns once the
// module is serving (background loops keep running until Stop); Stop drains
// within ctx's deadline.
type Module interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Runner is implemented by modules with a background loop that reports its
// failure by returning it (like dskit's running function). The runtime calls
// Run once Start has returned, with a context that ends only when the module
// has stopped: at shutdown Stop runs first, with the drain deadline, while
// the loop still runs (so a module can drain through it), then the context
// is cancelled and Run awaited within the same deadline. An error Run
// returns before the shutdown stops the process, naming the module, as a
// failed Start does: every started module is stopped, in reverse order. An
// error returned later is reported with the stop errors. Returning nil early
// means the loop's work is done; the process goes on.
type Runner interface {
	Run(ctx context.Context) error
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
	// Before names modules that, when they run in the same process, start
	// after this one and so stop before it. It orders without requiring:
	// ingest starts before chat so that on shutdown chat has stopped
	// accepting messages before ingest drains the stream.
	Before []string
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

// plan returns the registrations needed for targets in start order:
// dependencies first, and Before edges between modules that are both
// planned; otherwise roles start in the order given. It fails on an
// unknown target, an unknown dependency or a cycle.
func plan(targets []string) ([]Registration, error) {
	regMu.Lock()
	defer regMu.Unlock()

	// The closure of the targets over Deps.
	needed := map[string]bool{}
	var add func(name string, path []string) error
	add = func(name string, path []string) error {
		if needed[name] {
			return nil
		}
		if _, ok := registry[name]; !ok {
			return fmt.Errorf("unknown module %q (needed by %s)", name, strings.Join(path, " -> "))
		}
		needed[name] = true
		for _, d := range registry[name].Deps {
			if err := add(d, append(path, name)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range targets {
		if r, ok := registry[t]; !ok || !r.Role {
			var valid []string
			for n, r := range registry {
				if r.Role {
					valid = append(valid, n)
				}
			}
			sort.Strings(valid)
			return nil, fmt.Errorf("unknown role %q (valid roles: %s)", t, strings.Join(valid, ", "))
		}
		if err := add(t, nil); err != nil {
			return nil, err
		}
	}

	// after[m] lists what must start before m.
	after := map[string][]string{}
	for name := range needed {
		r := registry[name]
		after[name] = append(after[name], r.Deps...)
		for _, b := range r.Before {
			if needed[b] {
				after[b] = append(after[b], name)
			}
		}
	}
	names := make([]string, 0, len(needed))
	for n := range needed {
		names = append(names, n)
	}
	sort.Strings(names)

	var (
		order []Registration
		state = map[string]int{} // 1 visiting, 2 done
		visit func(name string, path []string) error
	)
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(path, " -> "), name)
		case 2:
			return nil
		}
		state[name] = 1
		first := append([]string(nil), after[name]...)
		sort.Strings(first)
		for _, d := range first {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, registry[name])
		return nil
	}
	// Targets in the order given, then whatever else is needed.
	for _, n := range append(append([]string(nil), targets...), names...) {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
