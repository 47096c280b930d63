package chat

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

// countingConn records each Write the socket sees.
type countingConn struct {
	net.Conn
	writes [][]byte
	err    error
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func TestCorkBatchesWrites(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}

	if _, err := c.Write([]byte("lone")); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 1 {
		t.Fatalf("an uncorked write must go straight through, got %d writes", len(under.writes))
	}

	c.cork()
	for _, f := range []string{"a", "bb", "ccc"} {
		if _, err := c.Write([]byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	if len(under.writes) != 1 {
		t.Fatalf("corked writes reached the socket early: %q", under.writes)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 2 || string(under.writes[1]) != "abbccc" {
		t.Fatalf("uncork must write the backlog in one write, got %q", under.writes)
	}

	// A backlog larger than maxCork is written in pieces, in order.
	c.cork()
	big := bytes.Repeat([]byte("x"), maxCork-10)
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("0123456789abc")); err != nil {
		t.Fatal(err)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 4 || len(under.writes[2]) != len(big) || string(under.writes[3]) != "0123456789abc" {
		t.Fatalf("overflow: got %d writes", len(under.writes))
	}
	if cap(c.buf) > keepCork {
		t.Errorf("a connection keeps %d bytes of cork buffer after a large batch", cap(c.buf))
	}

	// A socket error surfaces at uncork.
	under.err = errors.New("broken pipe")
	c.cork()
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := c.uncork(); err == nil {
		t.Fatal("uncork must report the socket's error")
	}
}
