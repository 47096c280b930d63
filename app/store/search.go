package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the one owner of what a search query is (ParseSearch) and
// of which part of a result matched (Highlight): both backends and the
// search API use them, so a query means the same on SQLite and MongoDB.

// Limits of a search query.
const (
	MaxSearchBytes = 200
	MaxSearchTerms = 8
)

// ErrBadSearch is wrapped by ParseSearch's refusals (HTTP 400).
var ErrBadSearch = errors.New("bad search query")

// ParseSearch splits q into terms: runs of letters and digits (anything
// else separates them), case-folded. A query with no term, longer than
// MaxSearchBytes, not UTF-8 or of more than MaxSearchTerms terms is
// refused with the reason.
func ParseSearch(q string) ([]string, error) {
	switch {
	case !utf8.ValidString(q):
		return nil, fmt.Errorf("%w: q is not valid UTF-8", ErrBadSearch)
	case len(q) > MaxSearchBytes:
		return nil, fmt.Errorf("%w: q is longer than %d bytes", ErrBadSearch, MaxSearchBytes)
	}
	terms := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	switch {
	case len(terms) == 0:
		return nil, fmt.Errorf("%w: q has no word to search for", ErrBadSearch)
	case len(terms) > MaxSearchTerms:
		return nil, fmt.Errorf("%w: q has %d words, at most %d", ErrBadSearch, len(terms), MaxSearchTerms)
	}
	return terms, nil
}

// Span is a matching part of a text: [Start, End) in UTF-16 code units,
// as JavaScript indexes strings.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Highlight returns where the terms occur in text (case-insensitively, each
// occurrence of each term), in order and merged where they overlap.
func Highlight(text string, terms []string) []Span {
	lower := []rune(strings.ToLower(text))
	orig := []rune(text)
	if len(lower) != len(orig) {
		// A rune whose lower case is of another length (rare): match on
		// the original's runes one by one instead.
		lower = make([]rune, len(orig))
		for i, r := range orig {
			lower[i] = unicode.ToLower(r)
		}
	}
	// UTF-16 offset of each rune.
	off := make([]int, len(orig)+1)
	for i, r := range orig {
		off[i+1] = off[i] + utf16.RuneLen(r)
		if off[i+1] < off[i]+1 {
			off[i+1] = off[i] + 1
		}
	}
	var spans []Span
	for _, t := range terms {
		tr := []rune(t)
		if len(tr) == 0 {
			continue
		}
		for i := 0; i+len(tr) <= len(lower); i++ {
			if string(lower[i:i+len(tr)]) == t {
				spans = append(spans, Span{off[i], off[i+len(tr)]})
			}
		}
	}
	if len(spans) < 2 {
		return spans
	}
	// Sort by start, then merge overlaps.
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].Start < spans[j-1].Start; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		if s.Start <= last.End {
			last.End = max(last.End, s.End)
			continue
		}
		out = append(out, s)
	}
	return out
}
