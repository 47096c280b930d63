package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"
	"github.com/spf13/cobra"

	"github.com/auroradev/aurora/app/bus"
	"github.com/auroradev/aurora/app/embeddedredis"
	"github.com/auroradev/aurora/app/infra"
	"github.com/auroradev/aurora/config"
)

// withRedis connects to the configured Redis for one operator command. With
// no redis.url, that is the embedded Redis of the `aurora serve` running on
// the same data dir, found through the file serve keeps there.
func withRedis(cmd *cobra.Command, o *options, fn func(ctx context.Context, c rueidis.Client, cfg *config.Config) error) error {
	cfg, _, err := o.load(cmd)
	if err != nil {
		return err
	}
	c, err := dialRedis(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cmd.Context(), c, cfg)
}

// dialRedis connects to the configured Redis (or the embedded one of the
// `aurora serve` on the same data dir).
func dialRedis(cfg *config.Config) (rueidis.Client, error) {
	url, display := cfg.Redis.URL, cfg.Masked().Redis.URL
	if url == "" {
		rt, err := embeddedredis.ReadRuntime(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("redis.url is not set, so this command uses the embedded Redis of `aurora serve`: %w; "+
				"start `aurora serve` with the same --data-dir, or give --redis-url (or AURORA_REDIS_URL) of another Redis, e.g. redis://localhost:6379", err)
		}
		url, display = rt.URL, "embedded "+rt.Addr+" (aurora serve, pid "+strconv.Itoa(rt.PID)+")"
	}
	opt, err := infra.RedisOptions(url)
	if err != nil {
		return nil, err
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect to redis at %s: %w", display, err)
	}
	return c, nil
}

func newStreamsCmd(o *options) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "streams",
		Short: "Inspect and repair the message stream the ingest role stores (chat:messages)",
		Long: "The chat role appends every message to the Redis stream " + bus.Stream + "; ingest workers read it\n" +
			"through the consumer group " + bus.Group + " and store it. Entries that cannot be stored go to\n" +
			bus.DeadStream + ". These commands talk to the configured Redis (redis.url / --redis-url).\n" +
			"With bus.shards N > 1 a room's messages go to the stream of its shard, " + bus.ShardStream(1) + "\n" +
			"and so on for shards 1 to N-1: --shard picks the stream (default 0, " + bus.Stream + ").",
	}
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	c.PersistentFlags().Int("shard", 0, "the stream shard, 0 to bus.shards-1 ("+bus.Stream+" is shard 0)")
	c.AddCommand(
		newStreamsInfoCmd(o, &asJSON),
		newStreamsPendingCmd(o, &asJSON),
		newStreamsClaimCmd(o, &asJSON),
		newStreamsTrimCmd(o, &asJSON),
		newStreamsTailCmd(o, &asJSON),
		newStreamsDeadCmd(o, &asJSON),
	)
	return c
}

// shardStream is the stream --shard names, checked against bus.shards.
func shardStream(cmd *cobra.Command, cfg *config.Config) (string, error) {
	shard, err := cmd.Flags().GetInt("shard")
	if err != nil {
		return "", err
	}
	if n := bus.Shards(cfg.Bus.Shards).N(); shard < 0 || shard >= n {
		return "", fmt.Errorf("--shard %d: bus.shards is %d, so shards are 0 to %d", shard, n, n-1)
	}
	return bus.ShardStream(shard), nil
}

func ms(n int64) string {
	if n < 0 {
		return "-"
	}
	return (time.Duration(n) * time.Millisecond).String()
}

func newStreamsInfoCmd(o *options, asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Length of the stream, its consumer groups and consumers, pending entries and lag",
		Example: `  aurora streams info --redis-url redis://localhost:6379
  aurora streams info --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				stream, err := shardStream(cmd, cfg)
				if err != nil {
					return err
				}
				info, err := bus.Info(ctx, c, stream)
				if err != nil {
					return err
				}
				return output(o.stdout, *asJSON, info, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "STREAM\tLENGTH\tFIRST ID\tLAST ID")
					if !info.Exists {
						fmt.Fprintf(tw, "%s\t0\t-\t-\t(does not exist yet)\n", info.Stream)
					} else {
						fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", info.Stream, info.Length, orDash(info.FirstID), orDash(info.LastID))
					}
					fmt.Fprintf(tw, "%s\t%d\t\t\n", info.DeadStream, info.DeadLength)
					fmt.Fprintln(tw)
					fmt.Fprintln(tw, "GROUP\tCONSUMERS\tPENDING\tOLDEST PENDING\tLAST DELIVERED\tLAG")
					for _, g := range info.Groups {
						lag := fmt.Sprint(g.Lag)
						if g.LagAtLeast {
							lag = "≥" + lag
						}
						fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", g.Name, len(g.Consumers), g.Pending, orDash(g.OldestPendingID), g.LastDeliveredID, lag)
					}
					for _, g := range info.Groups {
						if len(g.Consumers) == 0 {
							continue
						}
						fmt.Fprintln(tw)
						fmt.Fprintln(tw, "CONSUMER\tGROUP\tPENDING\tIDLE")
						for _, cs := range g.Consumers {
							fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", cs.Name, g.Name, cs.Pending, ms(cs.IdleMs))
						}
					}
				})
			})
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newStreamsPendingCmd(o *options, asJSON *bool) *cobra.Command {
	var f bus.PendingFilter
	c := &cobra.Command{
		Use:   "pending",
		Short: "List entries delivered to an ingest worker and not acknowledged yet, oldest first",
		Example: `  aurora streams pending
  aurora streams pending --min-idle 30s --consumer ingest-7f9c-1
  aurora streams pending --count 1000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Count < 1 {
				return fmt.Errorf("--count %d: must be at least 1", f.Count)
			}
			if f.MinIdle < 0 {
				return fmt.Errorf("--min-idle %s: must not be negative", f.MinIdle)
			}
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				stream, err := shardStream(cmd, cfg)
				if err != nil {
					return err
				}
				pend, err := bus.Pending(ctx, c, stream, f)
				if err != nil {
					return err
				}
				return output(o.stdout, *asJSON, pend, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "ID\tCONSUMER\tIDLE\tDELIVERIES")
					for _, p := range pend {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.ID, p.Consumer, ms(p.IdleMs), p.Deliveries)
					}
				})
			})
		},
	}
	c.Flags().StringVar(&f.Consumer, "consumer", "", "only the entries of this consumer")
	c.Flags().DurationVar(&f.MinIdle, "min-idle", 0, "only entries idle at least this long")
	c.Flags().Int64Var(&f.Count, "count", 100, "at most this many entries")
	return c
}

func newStreamsClaimCmd(o *options, asJSON *bool) *cobra.Command {
	var (
		to, from string
		minIdle  time.Duration
		count    int64
	)
	c := &cobra.Command{
		Use:   "claim",
		Short: "Move idle pending entries to another consumer, where ingest stores them",
		Long: "Claimed entries stay pending: claiming stores nothing by itself and does not count as a\n" +
			"delivery (it never sends an entry to the dead stream). Name a running worker (see `aurora\n" +
			"streams info`) with --to and it stores them at its next look at its own entries (within\n" +
			"ingest.claim_idle/2); entries claimed for a consumer no worker runs as (the default,\n" +
			"aurora-cli) are taken over by a worker once idle for ingest.claim_idle.",
		Example: `  aurora streams claim --min-idle 30s --to ingest-7f9c-1
  aurora streams claim --from ingest-dead-1 --to ingest-7f9c-1 --count 1000
  aurora streams claim --min-idle 5m --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 {
				return fmt.Errorf("--count %d: must be at least 1", count)
			}
			if minIdle < 0 {
				return fmt.Errorf("--min-idle %s: must not be negative", minIdle)
			}
			if strings.TrimSpace(to) == "" {
				return errors.New("--to: name the consumer to claim the entries for")
			}
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				stream, err := shardStream(cmd, cfg)
				if err != nil {
					return err
				}
				ids, err := bus.Claim(ctx, c, stream, to, from, minIdle, count)
				if err != nil {
					return err
				}
				return output(o.stdout, *asJSON, map[string]any{"to": to, "claimed": ids}, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "claimed %d entries for %s\n", len(ids), to)
					for _, id := range ids {
						fmt.Fprintln(tw, id)
					}
				})
			})
		},
	}
	c.Flags().StringVar(&to, "to", "aurora-cli", "consumer to give the entries to")
	c.Flags().StringVar(&from, "from", "", "only entries of this consumer (default: any)")
	c.Flags().DurationVar(&minIdle, "min-idle", 30*time.Second, "only entries idle at least this long")
	c.Flags().Int64Var(&count, "count", 100, "at most this many entries")
	return c
}

func newStreamsTrimCmd(o *options, asJSON *bool) *cobra.Command {
	var (
		keep   int64
		dryRun bool
	)
	c := &cobra.Command{
		Use:   "trim",
		Short: "Remove entries every consumer group acknowledged, keeping the newest ones",
		Long: "The same safe trim the ingest role runs periodically: it never removes an entry that is\n" +
			"pending or not yet delivered to some group, and keeps the newest --keep entries\n" +
			"(default ingest.keep_recent) for reconnect recovery.",
		Example: `  aurora streams trim
  aurora streams trim --keep 1000 --dry-run
  aurora streams trim --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				stream, err := shardStream(cmd, cfg)
				if err != nil {
					return err
				}
				if !cmd.Flags().Changed("keep") {
					keep = int64(cfg.Ingest.KeepRecent)
				}
				if keep < 0 {
					return fmt.Errorf("--keep %d: must not be negative", keep)
				}
				const perPass = 10000
				var total bus.TrimResult
				for pass := 0; ; pass++ {
					limit := int64(perPass)
					if dryRun {
						limit = 0 // one pass that trims nothing
					}
					res, err := bus.Trim(ctx, c, stream, keep, limit, dryRun)
					if err != nil {
						return err
					}
					if pass == 0 {
						total = res
					} else {
						total.Trimmed += res.Trimmed
						total.MinID = orKeep(res.MinID, total.MinID)
						total.SafeID, total.Reason = res.SafeID, res.Reason
					}
					if dryRun || res.Trimmed < perPass {
						break
					}
				}
				return output(o.stdout, *asJSON, total, func(tw *tabwriter.Writer) {
					verb := "trimmed"
					if dryRun {
						verb = "would trim"
					}
					fmt.Fprintf(tw, "%s %d of %d entries of %s", verb, total.Trimmed, total.LengthBefore, stream)
					if total.MinID != "" {
						fmt.Fprintf(tw, " (every entry before %s)", total.MinID)
					}
					fmt.Fprintln(tw)
					if total.Reason != "" {
						fmt.Fprintf(tw, "kept the rest: %s\n", total.Reason)
					}
				})
			})
		},
	}
	c.Flags().Int64Var(&keep, "keep", 0, "newest entries to keep (default ingest.keep_recent)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "only tell what would be trimmed")
	return c
}

func orKeep(s, old string) string {
	if s == "" {
		return old
	}
	return s
}

// tailEntry is one line of `streams tail --json`.
type tailEntry struct {
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

func newStreamsTailCmd(o *options, asJSON *bool) *cobra.Command {
	var (
		count int
		from  string
	)
	c := &cobra.Command{
		Use:   "tail",
		Short: "Print entries as they are appended to the stream, until Ctrl-C or --count",
		Long: "Reads outside the consumer group: it disturbs no ingest worker. With --json it prints one\n" +
			"JSON object per line.",
		Example: `  aurora streams tail
  aurora streams tail --count 10 --json
  aurora streams tail --from 0 --count 100   # from the oldest entry still in the stream`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 {
				return fmt.Errorf("--count %d: must not be negative", count)
			}
			if from != "$" && from != "0" {
				if _, err := bus.ParseID(from); err != nil {
					return fmt.Errorf("--from: %w (or $ for new entries only, 0 for the oldest)", err)
				}
			}
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				stream, err := shardStream(cmd, cfg)
				if err != nil {
					return err
				}
				ctx, cancel := signalContext(ctx)
				defer cancel()
				last := from
				if last == "$" {
					var err error
					if last, err = bus.LastID(ctx, c, stream); err != nil {
						return err
					}
				}
				enc := json.NewEncoder(o.stdout)
				printed := 0
				for count == 0 || printed < count {
					n := int64(100)
					if count > 0 {
						n = int64(count - printed)
					}
					es, err := bus.ReadAfter(ctx, c, stream, last, n, time.Second)
					if ctx.Err() != nil {
						return nil // Ctrl-C
					}
					if err != nil {
						return err
					}
					for _, e := range es {
						fields := make(map[string]string, len(e.FieldValues))
						for _, fv := range e.FieldValues {
							fields[fv.Field] = fv.Value
						}
						if *asJSON {
							err = enc.Encode(tailEntry{ID: e.ID, Fields: fields})
						} else {
							_, err = fmt.Fprintf(o.stdout, "%s  %s  %s: %s\n", e.ID, fields[bus.FieldRoomID],
								orKeep(fields[bus.FieldUsername], fields[bus.FieldUserID]), fields[bus.FieldText])
						}
						if err != nil {
							return err
						}
						last = e.ID
						printed++
					}
				}
				return nil
			})
		},
	}
	c.Flags().IntVar(&count, "count", 0, "exit after this many entries (0: until Ctrl-C)")
	c.Flags().StringVar(&from, "from", "$", "start after this id ($: new entries only, 0: from the oldest)")
	return c
}

func newStreamsDeadCmd(o *options, asJSON *bool) *cobra.Command {
	var (
		requeue bool
		count   int64
		ids     []string
	)
	c := &cobra.Command{
		Use:   "dead",
		Short: "List the entries that could not be stored; --requeue puts them back on the stream",
		Long: "An entry goes to " + bus.DeadStream + " when it does not decode, or when the store rejected\n" +
			"it on each of ingest.max_deliveries deliveries. --requeue appends each one back to " + bus.Stream + "\n" +
			"(with bus.shards > 1: to the stream of its room's shard; --shard does not apply here)\n" +
			"with its original fields and removes it from the dead stream; it is then stored under its\n" +
			"original message id, once even if requeued twice.",
		Example: `  aurora streams dead
  aurora streams dead --json
  aurora streams dead --requeue
  aurora streams dead --requeue --id 1718000000000-0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 1 {
				return fmt.Errorf("--count %d: must be at least 1", count)
			}
			if len(ids) > 0 && !requeue {
				return errors.New("--id selects entries to requeue: use it with --requeue")
			}
			return withRedis(cmd, o, func(ctx context.Context, c rueidis.Client, cfg *config.Config) error {
				// One dead stream for every shard: --shard does not apply.
				dead, err := bus.DeadEntries(ctx, c, count)
				if err != nil {
					return err
				}
				if !requeue {
					return output(o.stdout, *asJSON, dead, func(tw *tabwriter.Writer) {
						fmt.Fprintln(tw, "DEAD ENTRY\tMESSAGE ID\tROOM\tUSER\tREASON")
						for _, d := range dead {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.DeadID, d.Fields[bus.FieldRoomID],
								orKeep(d.Fields[bus.FieldUsername], d.Fields[bus.FieldUserID]), d.Reason)
						}
					})
				}
				if len(ids) > 0 {
					want := map[string]bool{}
					for _, id := range ids {
						want[id] = true
					}
					var sel []bus.DeadEntry
					for _, d := range dead {
						if want[d.ID] || want[d.DeadID] {
							sel = append(sel, d)
						}
					}
					dead = sel
				}
				res, err := bus.Requeue(ctx, c, bus.Shards(cfg.Bus.Shards), dead)
				if err != nil {
					return err
				}
				return output(o.stdout, *asJSON, map[string]any{"requeued": res}, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "DEAD ENTRY\tMESSAGE ID\tNEW ENTRY")
					for _, r := range res {
						to := orDash(r.NewID)
						if r.Error != "" {
							to = "not requeued: " + r.Error
						} else if r.NewID == "" {
							to = "(duplicate, removed)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\n", r.DeadEntryID, r.DeadID, to)
					}
				})
			})
		},
	}
	c.Flags().BoolVar(&requeue, "requeue", false, "append the dead entries back to "+bus.Stream+" (their room's shard stream) and remove them from the dead stream")
	c.Flags().Int64Var(&count, "count", 100, "at most this many entries, oldest first")
	c.Flags().StringSliceVar(&ids, "id", nil, "with --requeue, only these entries (dead entry id or message id)")
	return c
}
