package builtin

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestBuiltins(t *testing.T) {
	at := time.Date(2016, 3, 14, 15, 9, 26, 0, time.UTC)
	cmds := Commands(func() time.Time { return at })
	tests := []struct {
		key, name, want string
	}{
		{"hello", "hello", "hey what's up?"},
		{"ping", "ping", "pong"},
		{"time", "time", "Server time is: Mon, 14 Mar 2016 15:09:26 UTC"},
		{"the three laws", "the three laws", strings.Join(Laws, "\n")},
		{"three laws", "the three laws", strings.Join(Laws, "\n")},
		{"the three laws of robotics", "the three laws", strings.Join(Laws, "\n")},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			c, ok := Match(cmds, tc.key)
			if !ok {
				t.Fatalf("%q matched nothing", tc.key)
			}
			if c.Name != tc.name {
				t.Fatalf("%q matched %q, want %q", tc.key, c.Name, tc.name)
			}
			if got := c.Exec(context.Background(), strings.Fields(tc.key)); got != tc.want {
				t.Errorf("answer %q, want %q", got, tc.want)
			}
		})
	}
	for _, key := range []string{"pingx", "ping me", "hello there", "echo ping", "laws", "help", "timeout"} {
		if c, ok := Match(cmds, key); ok {
			t.Errorf("%q matched %q; built-ins must match whole messages", key, c.Name)
		}
	}
}

// Every example help shows runs the command it illustrates.
func TestExamplesMatch(t *testing.T) {
	cmds := Commands(time.Now)
	for _, c := range append(cmds, Help) {
		if len(c.Examples) == 0 {
			t.Errorf("%s has no examples", c.Name)
		}
		for _, ex := range c.Examples {
			key := strings.ToLower(strings.Join(strings.Fields(ex), " "))
			if c.Name == HelpUsage {
				if !HelpPattern.MatchString(key) {
					t.Errorf("help example %q is not help", ex)
				}
				continue
			}
			if m, ok := Match(cmds, key); !ok || m.Name != c.Name {
				t.Errorf("%s example %q does not run it", c.Name, ex)
			}
		}
	}
}
