package app

import (
	"context"
	"sync"
	"testing"
)

var planRegs sync.Once

// nopModule is never called: plan only orders registrations.
func nopModule(context.Context, *Host) (Module, error) { return nil, nil }

// TestPlanBefore: a Before edge orders two roles that run together (ingest
// starts before chat, so it stops after chat), and is ignored when the other
// role is not planned.
func TestPlanBefore(t *testing.T) {
	// Registered once per test binary, so -count=N does not register twice.
	planRegs.Do(func() {
		Register(Registration{Name: "plan-base", New: nopModule})
		Register(Registration{Name: "plan-producer", Role: true, Deps: []string{"plan-base"}, New: nopModule})
		Register(Registration{Name: "plan-consumer", Role: true, Deps: []string{"plan-base"}, Before: []string{"plan-producer"}, New: nopModule})
		Register(Registration{Name: "plan-loop-a", Role: true, Before: []string{"plan-loop-b"}, Deps: []string{"plan-base"}, New: nopModule})
		Register(Registration{Name: "plan-loop-b", Role: true, Before: []string{"plan-loop-a"}, New: nopModule})
	})

	names := func(regs []Registration) []string {
		var out []string
		for _, r := range regs {
			out = append(out, r.Name)
		}
		return out
	}
	for _, targets := range [][]string{
		{"plan-producer", "plan-consumer"},
		{"plan-consumer", "plan-producer"},
	} {
		regs, err := plan(targets)
		if err != nil {
			t.Fatal(err)
		}
		got := names(regs)
		want := []string{"plan-base", "plan-consumer", "plan-producer"}
		if len(got) != len(want) {
			t.Fatalf("targets %v: order %v, want %v", targets, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("targets %v: order %v, want %v", targets, got, want)
			}
		}
	}
	regs, err := plan([]string{"plan-producer"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(regs); len(got) != 2 || got[1] != "plan-producer" {
		t.Fatalf("a Before edge must not pull in its target: %v", got)
	}

	if _, err := plan([]string{"plan-loop-a", "plan-loop-b"}); err == nil {
		t.Fatal("a Before cycle must fail")
	}
}
