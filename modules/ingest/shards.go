package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/auroradev/aurora/app"
	"github.com/auroradev/aurora/app/bus"
)

// Shards is the ingest module with stream shards (bus.shards): one Worker
// per shard stream, each reading its stream through the group bus.Group on
// it under the process's one consumer name. The groups balance each stream
// over the ingest processes on their own: a process reads what the others
// have not, and claims what a dead one left (claim_idle), stream by
// stream. Every Worker shares the process's aurora_ingest_* series.
type Shards struct {
	workers []*Worker
	// retention is the process's retention loop (nil without o.Rooms).
	retention *retention
}

// NewShards makes a Worker for each stream of shards from o (o.Stream is
// set per worker).
func NewShards(o Options, shards bus.Shards) (*Shards, error) {
	s := &Shards{}
	var shared *metrics
	for i, stream := range shards.Streams() {
		wo := o
		wo.Stream = stream
		wo.shared = shared
		w, err := NewWorker(wo)
		if err != nil {
			return nil, fmt.Errorf("ingest worker of %s: %w", stream, err)
		}
		if i == 0 {
			shared = w.m
		}
		s.workers = append(s.workers, w)
	}
	if o.Rooms != nil && o.Config.RetentionInterval > 0 && len(s.workers) > 0 {
		w := s.workers[0]
		s.retention = &retention{o: w.o, m: w.m, holder: w.o.Consumer + "-" + app.NewID()}
		s.retention.o.Log = w.log.With("part", "retention")
	}
	return s, nil
}

// Workers are the shards' workers, shard 0's first.
func (s *Shards) Workers() []*Worker { return s.workers }

// Start starts every worker; when one fails, those started are stopped.
func (s *Shards) Start(ctx context.Context) error {
	for i, w := range s.workers {
		if err := w.Start(ctx); err != nil {
			for _, started := range s.workers[:i] {
				_ = started.Stop(ctx)
			}
			return err
		}
	}
	if s.retention != nil {
		s.retention.start()
	}
	return nil
}

// Stop stops every worker at once (each stores the batch in hand).
func (s *Shards) Stop(ctx context.Context) error {
	if s.retention != nil {
		s.retention.stop()
	}
	errs := make([]error, len(s.workers))
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Stop(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", w.o.Stream, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Check fails when any worker's does.
func (s *Shards) Check(ctx context.Context) error {
	for _, w := range s.workers {
		if err := w.Check(ctx); err != nil {
			if len(s.workers) > 1 {
				return fmt.Errorf("%s: %w", w.o.Stream, err)
			}
			return err
		}
	}
	return nil
}
