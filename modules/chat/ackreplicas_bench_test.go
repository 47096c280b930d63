package chat

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/rueidis"

	"github.com/auroradev/aurora/app/apptest"
)

// BenchmarkSendAck measures what chat.ack_replicas costs a sender: the
// time from writing a message frame to reading its ack, over real
// WebSockets, on a real redis-server primary with one replica on loopback
// (the replica is there in both cases, so replication costs the primary the
// same; only the WAIT differs). One sender sends its next message when the
// ack of the last arrived; with 50, each does so on its own connection, as
// a distinct user in a room of its own (no fan-out to others). It reports
// p50 and p99 of the ack latency in µs and the acks per second.
//
//	go test -run '^$' -bench BenchmarkSendAck -benchtime 2000x ./modules/chat
func BenchmarkSendAck(b *testing.B) {
	for _, replicas := range []int{0, 1} {
		for _, senders := range []int{1, 50} {
			b.Run(fmt.Sprintf("ack_replicas=%d/senders=%d", replicas, senders), func(b *testing.B) {
				benchSendAck(b, replicas, senders)
			})
		}
	}
}

func benchSendAck(b *testing.B, replicas, senders int) {
	primary := apptest.StartRedisServer(b)
	primary.StartReplica(b)
	cfg := chatConfig(b)
	cfg.Redis.URL = primary.URL
	cfg.Chat.AckReplicas = replicas // chat.ack_timeout: the default, 500ms
	// A benchmark of the ack's latency, not of the limits: each sender sends
	// as fast as its acks come back.
	cfg.Chat.RoomRate, cfg.Chat.UserRate = 1<<30, 1<<30
	s := startChat(b, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*websocket.Conn, senders)
	for i := range conns {
		path := "/ws?token=" + url.QueryEscape(s.token("bench"+strconv.Itoa(i), "bench"+strconv.Itoa(i)))
		dctx, dcancel := context.WithTimeout(ctx, waitFor)
		ws, _, err := websocket.Dial(dctx, s.wsURL()+path, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
		dcancel()
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		b.Cleanup(func() { ws.CloseNow() })
		room := "bench" + strconv.Itoa(i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"`+room+`"}`)); err != nil {
			b.Fatal(err)
		}
		if err := readUntil(ctx, ws, []byte(`"type":"joined","room":"`+room+`"`)); err != nil {
			b.Fatalf("join %d: %v", i, err)
		}
		conns[i] = ws
	}

	per := (b.N + senders - 1) / senders
	lat := make([][]time.Duration, senders)
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i, ws := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := "bench" + strconv.Itoa(i)
			lat[i] = make([]time.Duration, 0, per)
			for n := 0; n < per; n++ {
				cid := "m" + strconv.Itoa(n)
				frame := []byte(`{"type":"message","room":"` + room + `","text":"benchmark message","clientId":"` + cid + `"}`)
				began := time.Now()
				if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
					errs <- err
					return
				}
				if err := readUntil(ctx, ws, []byte(`"type":"ack","clientId":"`+cid+`"`)); err != nil {
					errs <- fmt.Errorf("sender %d message %d: %w", i, n, err)
					return
				}
				lat[i] = append(lat[i], time.Since(began))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "acks/s")
}

// readUntil reads frames until one containing want; an error frame fails.
func readUntil(ctx context.Context, ws *websocket.Conn, want []byte) error {
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	for {
		_, f, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		if bytes.Contains(f, want) {
			return nil
		}
		if bytes.Contains(f, []byte(`"type":"error"`)) || bytes.Contains(f, []byte(`"type":"rate_limited"`)) {
			return fmt.Errorf("refused: %s", f)
		}
	}
}

// BenchmarkWaitPipeline compares two ways to run WAIT on the connection of
// the send script's write, on a primary with one replica: the sender's
// (EVALSHA and WAIT pipelined in one DoMulti, one round trip on a
// connection of rueidis' blocking pool) and a Dedicated client (two round
// trips on a connection held for the pair). Direct Redis calls, no
// WebSocket.
func BenchmarkWaitPipeline(b *testing.B) {
	primary := apptest.StartRedisServer(b)
	primary.StartReplica(b)
	cfg := chatConfig(b)
	cfg.Chat.AckReplicas = 1
	cfg.Chat.RoomRate, cfg.Chat.UserRate = 1<<30, 1<<30 // as in BenchmarkSendAck
	c := apptest.RedisClient(b, primary.URL)
	s := &sender{redis: c, cfg: cfg.Chat}
	ctx := context.Background()
	msg := func(i int) outgoing {
		return outgoing{Room: "bench", UserID: "u1", Username: "bench", Text: "benchmark message", ClientID: "c" + strconv.Itoa(i)}
	}

	b.Run("domulti", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			began := time.Now()
			res, err := s.send(ctx, msg(i))
			if err != nil || res.Unreplicated {
				b.Fatalf("send %d of %d: %+v %v after %s", i, b.N, res, err, time.Since(began))
			}
		}
	})
	b.Run("dedicated", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			keys, args := s.scriptArgs(msg(b.N + i))
			err := c.Dedicated(func(d rueidis.DedicatedClient) error {
				err := d.Do(ctx, d.B().Evalsha().Sha1(sendSHA).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()).Error()
				if e, ok := rueidis.IsRedisErr(err); ok && e.IsNoScript() {
					err = d.Do(ctx, d.B().Eval().Script(sendLua).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()).Error()
				}
				if err != nil {
					return err
				}
				n, err := d.Do(ctx, d.B().Wait().Numreplicas(1).Timeout(cfg.Chat.AckTimeout.Milliseconds()).Build()).AsInt64()
				if err == nil && n < 1 {
					err = fmt.Errorf("WAIT answered %d", n)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
