package apptest

import (
	"strings"
	"testing"
)

func TestFindSeries(t *testing.T) {
	page := `# HELP aurora_x_total x
# TYPE aurora_x_total counter
aurora_x_total 3
aurora_x_total_extra 9
aurora_y{role="chat",code="a \"b\""} 4.5
aurora_y{role="ingest"} 7
`
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"aurora_x_total", map[string]string{}, 3},
		{"aurora_x", map[string]string{}, 0},
		{"aurora_y", map[string]string{"code": `a "b"`, "role": "chat"}, 4.5},
		{"aurora_y", map[string]string{"role": "ingest"}, 7},
		{"aurora_y", map[string]string{}, 0},
		{"aurora_z", map[string]string{}, 0},
	} {
		got, err := findSeries(strings.NewReader(page), tc.name, tc.labels)
		if err != nil || got != tc.want {
			t.Errorf("%s%v = %v, %v; want %v", tc.name, tc.labels, got, err, tc.want)
		}
	}
	if _, err := findSeries(strings.NewReader("aurora_x_total nope\n"), "aurora_x_total", map[string]string{}); err == nil {
		t.Error("a malformed value read without an error")
	}
}
