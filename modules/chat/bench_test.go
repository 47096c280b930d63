package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/auroradev/aurora/app/bus"
)

// BenchmarkFanout measures the delivery path of one message to N local
// connections on real sockets: the payload as it arrives from Pub/Sub is
// decoded once, its bytes queued for every member, and each connection's
// writer puts it on its socket. An iteration ends when every client has
// read the message.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n, "conns"), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	cfg := chatConfig(b)
	cfg.Chat.MaxConnsPerUser = n
	// A benchmark of fan-out, not of admission: its n connections all come
	// from 127.0.0.1 at once, past the per-address cap and handshake rate.
	cfg.HTTP.MaxConnsPerIP = 0
	cfg.HTTP.UpgradeRatePerIP = 0
	s := startChat(b, cfg)
	g, ok := s.App.Module("chat").(*gateway)
	if !ok {
		b.Fatal("the chat module is not the chat gateway")
	}
	path := "/ws?token=" + url.QueryEscape(s.token("u1", "alice"))

	var got sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers sync.WaitGroup
	prefix := []byte(`{"type":"message"`)
	for i := 0; i < n; i++ {
		dctx, dcancel := context.WithTimeout(ctx, waitFor)
		ws, _, err := websocket.Dial(dctx, s.wsURL()+path, nil) //nolint:bodyclose // coder/websocket: the handshake response body needs no closing
		dcancel()
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		b.Cleanup(func() { ws.CloseNow() })
		if _, w, err := ws.Read(ctx); err != nil || !bytes.Contains(w, []byte("welcome")) {
			b.Fatalf("welcome %d: %q %v", i, w, err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, f, err := ws.Read(ctx)
				if err != nil {
					return
				}
				if bytes.HasPrefix(f, prefix) {
					got.Done()
				}
			}
		}()
	}
	b.Cleanup(func() { cancel(); readers.Wait() })

	payload, err := json.Marshal(bus.MessageFrame{Type: "message", ID: "1732670000000-0", Room: "general",
		User: "alice", UserID: "u1", Text: strings.Repeat("hello ", 20), TS: time.Now().UnixMilli()})
	if err != nil {
		b.Fatal(err)
	}
	channel, msg := bus.Channel("general"), string(payload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Add(n)
		g.deliver(channel, msg)
		got.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "frames/s")
}
