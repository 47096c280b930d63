package cmd

import (
	"encoding/json"
	"io"
	"text/tabwriter"
)

// output prints v as indented JSON when asJSON, else as a table for people
// drawn by table. Every operator command prints through it.
func output(w io.Writer, asJSON bool, v any, table func(tw *tabwriter.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}
