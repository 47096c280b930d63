package apptest

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Metric returns the value of one series on the /metrics page of the
// server at base (http://host:port): the metric name with exactly the
// labels given as name, value pairs (none for an unlabelled metric), in any
// order. A series that is absent reads as 0, as a counter that has not
// counted yet is. An unreachable page or a malformed line fails the test.
func Metric(t testing.TB, base, name string, labels ...string) float64 {
	t.Helper()
	return metric(t, &http.Client{Timeout: 10 * time.Second}, base, name, labels...)
}

// Metric is apptest.Metric on s through its Client (for a TLS server).
func (s *Server) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return metric(t, s.Client, s.URL, name, labels...)
}

func metric(t testing.TB, c *http.Client, base, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("metric %s: labels %q are not name, value pairs", name, labels)
	}
	want := map[string]string{}
	for i := 0; i < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	v, err := findSeries(resp.Body, name, want)
	if err != nil {
		t.Fatalf("%s/metrics: %v", base, err)
	}
	return v
}

// findSeries scans a Prometheus text page for the series name{want}.
func findSeries(r io.Reader, name string, want map[string]string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a comment, another metric, or one whose name only starts so
		}
		got := map[string]string{}
		if rest[0] == '{' {
			var err error
			if got, rest, err = parseLabels(rest[1:]); err != nil {
				return 0, fmt.Errorf("metric line %q: %w", line, err)
			}
		}
		if !maps.Equal(got, want) {
			continue
		}
		fields := strings.Fields(rest) // the value, then perhaps a timestamp
		if len(fields) == 0 {
			return 0, fmt.Errorf("metric line %q has no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	return 0, nil
}

// parseLabels reads `k="v",k2="v2"}` (the opening brace already read) and
// returns the labels and what follows the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			return labels, rest, nil
		}
		k, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, "", fmt.Errorf("bad label near %q", s)
		}
		var v strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(rest[i])
				}
				continue
			}
			v.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return nil, "", fmt.Errorf("unterminated value of label %s", k)
		}
		labels[strings.TrimSpace(k)] = v.String()
		s = rest[i+1:]
	}
}
