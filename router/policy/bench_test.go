package policy

import (
	"fmt"
	"strings"
	"testing"
)

// largePolicy returns a policy of n rules, as a big team might write it:
// default deny, twenty groups of ten users, and one rule per command
// ("cmdNN" and its subcommands) for one group, every fifth only in one
// channel.
func largePolicy(b *testing.B, n int) *Policy {
	b.Helper()
	var y strings.Builder
	y.WriteString("default: deny\ngroups:\n")
	for g := range 20 {
		fmt.Fprintf(&y, "  team%02d: [", g)
		for u := range 10 {
			if u > 0 {
				y.WriteString(", ")
			}
			fmt.Fprintf(&y, `"slack:U%02d%02d"`, g, u)
		}
		y.WriteString("]\n")
	}
	y.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - name: team%02d runs cmd%03d\n    commands: [cmd%03d, \"cmd%03d *\"]\n    groups: [team%02d]\n", i%20, i, i, i, i%20)
		if i%5 == 0 {
			fmt.Fprintf(&y, "    channels: [C%03d]\n", i)
		}
		y.WriteString("    effect: allow\n")
	}
	p, err := Parse([]byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkDecide measures Policy.Decide, which the router calls once per
// matched command (path), against a lookup in a map of precomputed
// decisions keyed by command (baseline): what a policy without users,
// groups, channels or globs would cost. A hit is decided by a rule; a miss
// goes through every rule to the default.
func BenchmarkDecide(b *testing.B) {
	small, err := Parse([]byte(sample))
	if err != nil {
		b.Fatal(err)
	}
	large := largePolicy(b, 100)
	table := map[string]Decision{}
	for i := range 100 {
		table[fmt.Sprintf("cmd%03d", i)] = Decision{Allowed: true, Rule: fmt.Sprintf("rule %d", i+1)}
	}
	for _, c := range []string{"deploy api", "restart", "help", "ping", "list services", "query"} {
		table[c] = Decision{Allowed: true, Rule: c}
	}
	for _, tc := range []struct {
		name    string
		p       *Policy
		req     Request
		allowed bool
		rule    string
	}{
		// The sample policy (5 rules, 2 groups): an admin deploying is
		// decided by rule 2 after a channel check; echo by nobody's
		// rule, after all five.
		{"small/hit", small, Request{Command: "deploy api", Platform: "slack", User: "UADMIN", Channel: "COPS"}, true, "admins deploy, confirmed"},
		{"small/miss", small, Request{Command: "echo", Platform: "slack", User: "U1", Channel: "COPS"}, false, "default"},
		// The shipped default (4 rules, 1 group): what most routers run.
		// query is decided by the last rule; a team's own command by
		// nobody's rule.
		{"default/hit", Default(), Request{Command: "query", Platform: "slack", User: "U1", Channel: "C1"}, false, "admins only"},
		{"default/miss", Default(), Request{Command: "mycommand", Platform: "slack", User: "U1", Channel: "C1"}, true, "default"},
		// 100 rules, 20 groups of 10: a hit half-way, and a miss.
		{"large100/hit", large, Request{Command: "cmd051", Platform: "slack", User: "U1105", Channel: "C1"}, true, "team11 runs cmd051"},
		{"large100/miss", large, Request{Command: "echo", Platform: "slack", User: "U1105", Channel: "C1"}, false, "default"},
	} {
		if d := tc.p.Decide(tc.req); d.Allowed != tc.allowed || d.Rule != tc.rule {
			b.Fatalf("%s: %+v, want allowed %v by %q", tc.name, d, tc.allowed, tc.rule)
		}
		b.Run(tc.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = tc.p.Decide(tc.req)
			}
		})
		b.Run(tc.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = table[tc.req.Command]
			}
		})
	}
}
