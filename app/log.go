package app

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/auroradev/aurora/config"
)

// NewLogger builds the process logger: JSON in production, text on a
// terminal ("auto"), at the configured level.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	text := c.Format == "text"
	if c.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				text = true
			}
		}
	}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// MaxLoggedInput is how many bytes of one user-supplied string a log line
// keeps.
const MaxLoggedInput = 64

// UserInput is text a client sent (a username, a room, a header), to be
// logged as an attribute: app.UserInput(name). Its log value is at most
// MaxLoggedInput bytes of it, cut on a character boundary and followed by
// "…(N bytes)" giving the whole length, with control and bidirectional
// formatting characters and invalid UTF-8 each replaced by U+FFFD, so a
// client can neither flood the log nor forge or hide lines in it.
type UserInput string

// LogValue implements slog.LogValuer; it runs only when the line is logged.
func (u UserInput) LogValue() slog.Value { return slog.StringValue(u.String()) }

// String is the bounded, cleaned text.
func (u UserInput) String() string {
	s := string(u)
	var b strings.Builder
	b.Grow(min(len(s), MaxLoggedInput) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:]) // (RuneError, 1) for an invalid byte
		if i+size > MaxLoggedInput {
			fmt.Fprintf(&b, "…(%d bytes)", len(s))
			break
		}
		i += size
		if r == utf8.RuneError || unicode.IsControl(r) || isBidiControl(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isBidiControl reports the characters that reorder text on display
// (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C): in a log viewer
// they can make a line read as something else.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}
