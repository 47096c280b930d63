package apptest

import (
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// ClientFrom returns an HTTP client whose connections leave from the
// loopback address ip (127.0.0.2, 127.0.0.3, ...: Linux routes all of
// 127.0.0.0/8 to loopback), for tests that need several client addresses
// against per-address limits without raising them. It keeps no idle
// connections, so each request is counted as a new connection.
func ClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// DialOptionsFrom are WebSocket dial options whose connection leaves from
// ip (see ClientFrom).
func DialOptionsFrom(ip string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPClient: ClientFrom(ip)}
}
