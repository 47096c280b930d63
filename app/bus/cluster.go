package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// This file is the cluster's view: its state and which nodes serve a key's
// slot. A Redis Cluster client sends a keyless command (PING, CLUSTER INFO) to
// whichever node it lists first, which may be a seed address that died
// while the cluster stayed healthy: a readiness probe built on one node
// would flip between 200 and 503 for as long as that node is gone. So the
// cluster's state is asked of the nodes one after another, in random order,
// until one answers.

// nodeTimeout bounds the question to one node, so that one that hangs does
// not use up the whole probe.
const nodeTimeout = time.Second

// ClusterState is CLUSTER INFO's cluster_state ("ok" or "fail") as the
// first node to answer sees it, and that node's address. It fails only
// when no node answers.
func ClusterState(ctx context.Context, c rueidis.Client) (state, node string, err error) {
	var errs []error
	err = EachNode(ctx, c, func(ctx context.Context, addr string, n rueidis.Client) error {
		info, err := n.Do(ctx, n.B().ClusterInfo().Build()).ToString()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			return err
		}
		// RESP3 answers a verbatim string: "txt:" leads the first line.
		for _, line := range strings.Split(strings.TrimPrefix(info, "txt:"), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_state:"); ok {
				state, node = v, addr
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: CLUSTER INFO has no cluster_state", addr))
		return errors.New("no cluster_state")
	})
	if err != nil {
		return "", "", fmt.Errorf("ask the cluster's nodes for CLUSTER INFO: none answered: %w", errors.Join(errs...))
	}
	return state, node, nil
}

// EachNode calls fn on the client's nodes in random order until one returns
// nil; it returns the last error when none did.
func EachNode(ctx context.Context, c rueidis.Client, fn func(ctx context.Context, addr string, n rueidis.Client) error) error {
	nodes := c.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	err := errors.New("the client knows no node")
	for _, a := range addrs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		nctx, cancel := context.WithTimeout(ctx, nodeTimeout)
		err = fn(nctx, a, nodes[a])
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// SlotNodes are the nodes serving one key's hash slot.
type SlotNodes struct {
	Key      string   `json:"key"`
	Slot     uint16   `json:"slot"`
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
}

// ServingNodes reads CLUSTER SLOTS from any node and returns, for each
// key, the primary and replicas serving its slot (Primary "" when no node
// serves it).
func ServingNodes(ctx context.Context, c rueidis.Client, keys ...string) ([]SlotNodes, error) {
	var ranges []rueidis.RedisMessage
	err := EachNode(ctx, c, func(ctx context.Context, _ string, n rueidis.Client) error {
		var err error
		ranges, err = n.Do(ctx, n.B().ClusterSlots().Build()).ToArray()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read CLUSTER SLOTS: %w", err)
	}
	out := make([]SlotNodes, len(keys))
	for i, k := range keys {
		// A command's slot is its key's hash slot (CRC16 of the hash tag or
		// the whole name, mod 16384): the client's own computation.
		cmd := c.B().Exists().Key(k).Build()
		slot := cmd.Slot()
		out[i] = SlotNodes{Key: k, Slot: slot}
		for _, r := range ranges {
			v, err := r.ToArray()
			if err != nil || len(v) < 3 {
				continue
			}
			lo, err1 := v[0].AsInt64()
			hi, err2 := v[1].AsInt64()
			if err1 != nil || err2 != nil || int64(slot) < lo || int64(slot) > hi {
				continue
			}
			out[i].Primary = nodeAddr(v[2])
			for _, rep := range v[3:] {
				out[i].Replicas = append(out[i].Replicas, nodeAddr(rep))
			}
			sort.Strings(out[i].Replicas)
		}
	}
	return out, nil
}

// nodeAddr is host:port of a node of a CLUSTER SLOTS range.
func nodeAddr(m rueidis.RedisMessage) string {
	v, err := m.ToArray()
	if err != nil || len(v) < 2 {
		return "?"
	}
	host, _ := v[0].ToString()
	port, _ := v[1].AsInt64()
	return fmt.Sprintf("%s:%d", host, port)
}

// StreamPrimary is a client of the one node that is the primary of the
// stream's slot now (where the send script runs, and the WAIT after it),
// for commands about that node itself (INFO replication). It is c itself
// when c is not a cluster client.
func StreamPrimary(ctx context.Context, c rueidis.Client) (rueidis.Client, error) {
	if c.Mode() != rueidis.ClientModeCluster {
		return c, nil
	}
	s, err := ServingNodes(ctx, c, Stream)
	if err != nil {
		return nil, err
	}
	n, ok := c.Nodes()[s[0].Primary]
	if !ok {
		return nil, fmt.Errorf("the primary of %s's slot, %q, is not among the client's nodes", Stream, s[0].Primary)
	}
	return n, nil
}
