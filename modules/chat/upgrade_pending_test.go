package chat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// maskedText is a client's text frame of p (masked, as RFC 6455 requires
// of a client), short enough for the 7-bit length.
func maskedText(p []byte) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f := []byte{wsFinText, 0x80 | byte(len(p))}
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i%4])
	}
	return f
}

// TestFirstFrameWithTheRequest: a client that sends its first frame in
// the same packet as its upgrade request (or right behind it, before the
// server hijacked the connection) has that frame read whole. net/http
// holds those bytes in its reader when the connection is hijacked;
// coder/websocket resets the reader the gateway hands it onto the
// connection, so the connection itself must return them first. Before it
// did, the frame was read from its middle and the connection failed with
// a protocol error ("unexpected rsv bits").
func TestFirstFrameWithTheRequest(t *testing.T) {
	s := startChat(t, chatConfig(t))
	// One write: the request and a ping frame behind it.
	resp, br := rawUpgrade(t, s, "", maskedText([]byte(`{"type":"ping"}`)))
	// A 101 has no body: the frames follow in br, which stays ours.
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	// Server frames are unmasked: read them until the pong.
	var seen []string
	for {
		op, payload, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("no pong: the connection ended (%v) after %q", err, seen)
		}
		if op == wsOpClose {
			t.Fatalf("the server closed the connection (%q) after %q: the ping was not read whole", payload, seen)
		}
		if bytes.Equal(payload, pongFrame) {
			return
		}
		seen = append(seen, strings.TrimSpace(string(payload)))
	}
}

// readServerFrame reads one unmasked server frame from br: its opcode and
// payload.
func readServerFrame(br *bufio.Reader) (byte, []byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0] & 0x0f, payload, nil
}

// TestUpgradeResponseWithWelcome: the gateway writes the 101 itself, in
// the same write as the welcome (one syscall per connect instead of two).
// The response is the one RFC 6455 asks for, and the welcome is already
// there when the response has been read: both came in one segment.
func TestUpgradeResponseWithWelcome(t *testing.T) {
	s := startChat(t, chatConfig(t))
	resp, br := rawUpgrade(t, s, "Sec-WebSocket-Protocol: aurora.v1\r\n", nil)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Proto != "HTTP/1.1" {
		t.Fatalf("upgrade answered %s %s", resp.Proto, resp.Status)
	}
	for k, want := range map[string]string{
		"Upgrade":                "websocket",
		"Connection":             "Upgrade",
		"Sec-Websocket-Accept":   "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", // RFC 6455 1.3's example key
		"Sec-Websocket-Protocol": "aurora.v1",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if br.Buffered() == 0 {
		t.Error("the welcome did not come in the write of the 101")
	}
	op, payload, err := readServerFrame(br)
	if err != nil || op != 0x1 || !strings.Contains(string(payload), `"type":"welcome"`) {
		t.Fatalf("first frame: op %d %q %v, want the welcome", op, payload, err)
	}
}

// rawUpgrade sends a WebSocket upgrade request for u1 on a plain TCP
// connection, with the header lines extra, and then after (in the same
// write), and returns the response and the reader the frames follow in.
func rawUpgrade(t *testing.T, s *server, extra string, after []byte) (*http.Response, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	req := "GET /ws?token=" + url.QueryEscape(s.token("u1", "alice")) + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" + extra +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), after...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, br
}
