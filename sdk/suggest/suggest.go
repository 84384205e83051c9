// Package suggest finds the names closest to a mistyped one, for the
// "Did you mean …?" of an unknown command, service or method.
package suggest

import (
	"fmt"
	"sort"
	"strings"
)

// Closest returns up to three of names closest to word: those that contain
// it or that it contains (for words of 3 characters or more), or within an
// edit distance of a third of its length (at least 2, and less than the
// shorter one's length: "at" is not suggested for "bot"), closest first. A
// dotted name also matches by its last part ("echo" finds
// "go.micro.bot.echo"). Comparison ignores case.
func Closest(word string, names []string) []string {
	w := strings.ToLower(word)
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	seen := map[string]bool{}
	for _, n := range names {
		ln := strings.ToLower(n)
		if seen[n] || ln == w {
			continue
		}
		seen[n] = true
		if d, ok := score(w, ln); ok {
			cands = append(cands, cand{n, d})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		return cands[i].name < cands[j].name
	})
	var out []string
	for _, c := range cands {
		if len(out) == 3 {
			break
		}
		out = append(out, c.name)
	}
	return out
}

// score is how far the lower-case word w is from the lower-case name ln,
// and whether that is close enough to suggest ln (see Closest).
func score(w, ln string) (int, bool) {
	d := Distance(w, ln)
	if len(w) >= 3 && (strings.Contains(ln, w) || strings.Contains(w, ln) && len(ln) >= 3) {
		d = min(d, 1) // "greet" for "greeter"
	}
	if i := strings.LastIndexByte(ln, '.'); i >= 0 && i < len(ln)-1 {
		d = min(d, Distance(w, ln[i+1:])+1)
	}
	// A name is not suggested for a word it shares less than a letter
	// with: "at" (2 edits from "bot") is not what "bot" meant.
	shorter := min(len([]rune(w)), len([]rune(ln)))
	return d, d <= max(2, len([]rune(w))/3) && d < shorter
}

// Distance is the optimal-string-alignment distance between a and b, in
// runes: insertions, deletions, substitutions and swaps of neighbours
// ("pnig" is one from "ping") each count 1. Strings over 128 runes are not
// compared: their distance is the longer length.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 128 || len(rb) > 128 {
		return max(len(ra), len(rb))
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// Quote lists names for a sentence: "a", "b" or "c".
func Quote(names []string) string {
	q := make([]string, len(names))
	for i, v := range names {
		q[i] = fmt.Sprintf("%q", v)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// Commands returns up to three of commands (each one or more words, such as
// "list services") closest to the message words, all equally close. A
// message whose first word starts a command of several words suggests that
// command ("list" and "list service" find "list services"); otherwise the
// message's first words, as many as the command has, are compared with the
// command as Closest compares a word with a name ("the three law" finds
// "the three laws" rather than "time"). Comparison ignores case.
func Commands(words []string, commands []string) []string {
	if len(words) == 0 {
		return nil
	}
	lw := make([]string, len(words))
	for i, w := range words {
		lw[i] = strings.ToLower(w)
	}
	best := -1
	var out []string
	seen := map[string]bool{}
	for _, c := range commands {
		cw := strings.Fields(strings.ToLower(c))
		if len(cw) == 0 || seen[c] {
			continue
		}
		seen[c] = true
		var d int
		switch {
		case len(cw) > 1 && cw[0] == lw[0]:
			d = 0
		default:
			phrase := strings.Join(lw[:min(len(cw), len(lw))], " ")
			var ok bool
			if d, ok = score(phrase, strings.Join(cw, " ")); !ok {
				continue
			}
		}
		switch {
		case best < 0 || d < best:
			best, out = d, []string{c}
		case d == best:
			out = append(out, c)
		}
	}
	sort.Strings(out)
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}
