package cmd_test

import (
	"strings"
	"testing"
)

type retentionJSON struct {
	Room             string `json:"room"`
	Retention        string `json:"retention"`
	Effective        string `json:"effective"`
	EffectiveSeconds int64  `json:"effectiveSeconds"`
}

func TestRoomsRetention(t *testing.T) {
	clearConfigEnv(t)
	for name, base := range operatorBackends(t) {
		t.Run(name, func(t *testing.T) {
			args := func(a ...string) []string { return append(append([]string{"rooms"}, a...), base...) }
			show := func(t *testing.T, extra ...string) retentionJSON {
				t.Helper()
				var r retentionJSON
				runJSON(t, &r, args(append([]string{"retention", "general"}, extra...)...)...)
				return r
			}
			if r := show(t); r != (retentionJSON{Room: "general", Retention: "default", Effective: "forever"}) {
				t.Errorf("a new room: %+v", r)
			}
			t.Run("server default", func(t *testing.T) {
				// The server's default shows as what applies.
				t.Setenv("AURORA_INGEST_RETENTION", "2h")
				if r := show(t); r != (retentionJSON{Room: "general", Retention: "default", Effective: "2h0m0s", EffectiveSeconds: 7200}) {
					t.Errorf("with ingest.retention 2h: %+v", r)
				}
			})
			if r := show(t, "30d"); r != (retentionJSON{Room: "general", Retention: "720h0m0s", Effective: "720h0m0s", EffectiveSeconds: 720 * 3600}) {
				t.Errorf("set 30d: %+v", r)
			}
			if r := show(t); r.Retention != "720h0m0s" {
				t.Errorf("30d is stored: %+v", r)
			}
			if r := show(t, "90m"); r.EffectiveSeconds != 5400 {
				t.Errorf("set 90m: %+v", r)
			}
			if r := show(t, "forever"); r != (retentionJSON{Room: "general", Retention: "forever", Effective: "forever"}) {
				t.Errorf("set forever: %+v", r)
			}
			if r := show(t, "default"); r.Retention != "default" {
				t.Errorf("set default: %+v", r)
			}
			code, out, errOut := runAurora(t, args("retention", "general", "48h")...)
			if code != 0 || !strings.Contains(out, "general") || !strings.Contains(out, "48h0m0s") {
				t.Errorf("table output: %d %q %q", code, out, errOut)
			}

			for _, c := range []struct {
				value, want string
			}{
				{"soon", "want a positive duration"},
				{"1x", "want a positive duration"},
				{"0", "want a positive duration"},
				{"0d", "want a positive duration"},
				{"10s", "at least 1m"},
				{"99999999999999d", "want a positive duration"},
			} {
				if msg := runFail(t, args("retention", "general", c.value)...); !strings.Contains(msg, c.want) {
					t.Errorf("retention %q: %q, want %q", c.value, msg, c.want)
				}
			}
			if msg := runFail(t, args("retention", "nowhere")...); !strings.Contains(msg, `room "nowhere" does not exist`) {
				t.Errorf("unknown room: %q", msg)
			}
			if msg := runFail(t, args("retention", "nowhere", "1h")...); !strings.Contains(msg, `room "nowhere" does not exist`) {
				t.Errorf("set on an unknown room: %q", msg)
			}
			if msg := runFail(t, args("retention", "Bad Room")...); !strings.Contains(msg, "room name") {
				t.Errorf("bad room name: %q", msg)
			}
		})
	}
}
