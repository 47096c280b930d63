package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// MigrationStatus is one versioned migration step of a store and whether it
// has been applied (recorded in the migrations table or collection as
// {version, name, appliedAt}).
type MigrationStatus struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// Migration names one versioned step; each backend keeps an ordered list of
// them with the code that applies each.
type Migration struct {
	Version int
	Name    string
}

// AppliedMigration is one record of the migrations table or collection.
type AppliedMigration struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// Step is one migration with what a backend runs to apply it: A is the
// backend's kind of action (Go code for MongoDB, SQL for SQLite).
type Step[A any] struct {
	Migration
	Apply A
}

// Migrator is a backend's side of the one migrate loop (Migrate and
// Statuses): its steps and how it reads and writes their records. The loop
// decides what is pending; the backend only applies and records.
type Migrator[A any] struct {
	// Store names the store in errors ("mongodb", "sqlite <path>").
	Store string
	// Steps is the backend's schema history, in version order. Append new
	// steps; never change or renumber an applied one.
	Steps []Step[A]
	// Applied reads the records, none when the store was never migrated.
	// It changes nothing.
	Applied func(ctx context.Context) ([]AppliedMigration, error)
	// Apply applies one step and records it as {version, name, appliedAt}.
	// The step must be idempotent, and recording a version already recorded
	// a no-op, because another process may migrate the same store at once
	// and a step interrupted before its record runs again.
	Apply func(ctx context.Context, st Step[A]) error
}

// Migrate applies, in version order, every step not recorded, stopping at
// the first that fails (Admin.Migrate).
func (m Migrator[A]) Migrate(ctx context.Context) error {
	applied, err := m.Applied(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", m.Store, err)
	}
	done := make(map[int]bool, len(applied))
	for _, a := range applied {
		done[a.Version] = true
	}
	for _, st := range m.Steps {
		if done[st.Version] {
			continue
		}
		if err := m.Apply(ctx, st); err != nil {
			return fmt.Errorf("migrate %s: migration %d %q: %w", m.Store, st.Version, st.Name, err)
		}
	}
	return nil
}

// Statuses reports every known step and whether it is applied, then the
// recorded versions this build does not know (Admin.Migrations). It only
// reads.
func (m Migrator[A]) Statuses(ctx context.Context) ([]MigrationStatus, error) {
	applied, err := m.Applied(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Store, err)
	}
	known := make([]Migration, len(m.Steps))
	for i, st := range m.Steps {
		known[i] = st.Migration
	}
	return statuses(known, applied), nil
}

// statuses merges a backend's known steps with the records of the applied
// ones: every known step in version order, then the recorded versions this
// build does not know, in version order.
func statuses(known []Migration, applied []AppliedMigration) []MigrationStatus {
	byVersion := make(map[int]AppliedMigration, len(applied))
	for _, a := range applied {
		byVersion[a.Version] = a
	}
	out := make([]MigrationStatus, 0, max(len(known), len(applied)))
	seen := make(map[int]bool, len(known))
	for _, m := range known {
		seen[m.Version] = true
		st := MigrationStatus{Version: m.Version, Name: m.Name}
		if a, ok := byVersion[m.Version]; ok {
			st.Applied, st.AppliedAt = true, a.AppliedAt.UTC()
		}
		out = append(out, st)
	}
	var unknown []MigrationStatus
	for _, a := range applied {
		if !seen[a.Version] {
			seen[a.Version] = true
			unknown = append(unknown, MigrationStatus{Version: a.Version, Name: a.Name, Applied: true, AppliedAt: a.AppliedAt.UTC()})
		}
	}
	slices.SortFunc(unknown, func(a, b MigrationStatus) int { return cmp.Compare(a.Version, b.Version) })
	return append(out, unknown...)
}
