package adapter_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/botmesh/botmesh/gateway/adapter"
)

func TestAddressingRoom(t *testing.T) {
	a := adapter.Addressing{Names: []string{"botmesh", "botmesh_"}, Mentions: []string{"<@UBOT>"}, Prefix: "!"}
	for _, tc := range []struct {
		text, cmd string
		ok        bool
	}{
		{"botmesh: ping", "ping", true},
		{"botmesh, ping", "ping", true},
		{"botmesh:ping", "ping", true},
		{"BotMesh: echo hi", "echo hi", true},
		{"  botmesh ,  ping", "", false}, // a space before the comma: not the form
		{"@botmesh ping", "ping", true},
		{"@botmesh: ping", "ping", true},
		{"@BOTMESH   list services", "list services", true},
		{"botmesh_: ping", "ping", true},
		{"<@UBOT> ping", "ping", true},
		{"<@UBOT>: ping", "ping", true},
		{"!ping", "ping", true},
		{"  !echo hi  ", "echo hi", true},
		{"botmesh:", "", true},
		// Chatter: the bot's name starting a sentence, or no address.
		{"botmesh ping", "", false},
		{"botmesh is acting up again", "", false},
		{"botmeshy: ping", "", false},
		{"@botmeshy ping", "", false},
		{"hello botmesh: ping", "", false},
		{"ping", "", false},
		{"!", "", false},
		{"!!!", "", false},
		{"! wow", "", false},
		{"<@UOTHER> ping", "", false},
		{"<@UBOT>ping", "", false},
	} {
		cmd, ok := a.Room(tc.text)
		if cmd != tc.cmd || ok != tc.ok {
			t.Errorf("Room(%q) = %q, %v; want %q, %v", tc.text, cmd, ok, tc.cmd, tc.ok)
		}
	}
	if cmd, ok := (adapter.Addressing{Names: []string{"botmesh"}}).Room("!ping"); ok {
		t.Errorf("no prefix configured, but !ping addressed the bot as %q", cmd)
	}
}

func TestAddressingDirect(t *testing.T) {
	a := adapter.Addressing{Names: []string{"botmesh"}, Prefix: "!"}
	for text, want := range map[string]string{
		"ping":                       "ping",
		"  echo hi ":                 "echo hi",
		"botmesh: ping":              "ping",
		"@botmesh ping":              "ping",
		"!ping":                      "ping",
		"botmesh is acting up again": "botmesh is acting up again",
	} {
		if got := a.Direct(text); got != want {
			t.Errorf("Direct(%q) = %q, want %q", text, got, want)
		}
		if got, ok := a.Command(text, false); got != want || !ok {
			t.Errorf("Command(%q, direct) = %q, %v; want %q", text, got, ok, want)
		}
	}
}

func TestAddressingDescribe(t *testing.T) {
	for _, tc := range []struct {
		a    adapter.Addressing
		want string
	}{
		{adapter.Addressing{Names: []string{"", "botmesh"}, Prefix: "!"}, "botmesh: help, @botmesh help or !help"},
		{adapter.Addressing{Names: []string{"botmesh"}}, "botmesh: help or @botmesh help"},
		{adapter.Addressing{Prefix: "."}, ".help"},
		{adapter.Addressing{}, ""},
	} {
		if got := tc.a.Describe("help"); got != tc.want {
			t.Errorf("%+v: Describe = %q, want %q", tc.a, got, tc.want)
		}
	}
	meta := map[string]string{}
	adapter.Addressing{Names: []string{"botmesh"}, Prefix: "!"}.MarkRoom(meta)
	if meta[adapter.MetaRoom] != "true" || meta[adapter.MetaAddress] != "botmesh: help, @botmesh help or !help" {
		t.Errorf("MarkRoom: %v", meta)
	}
}

// FuzzAddressing checks the rule on any text, name and prefix: an
// addressed text starts (after blanks) with the prefix and a letter or
// digit, or with the name or @name then ":" or "," (or a space after
// @name, or the end); the command is a trimmed part of the text.
func FuzzAddressing(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, name, prefix string) {
		a := adapter.Addressing{Names: []string{name}, Prefix: prefix}
		cmd, ok := a.Room(text)
		if !ok {
			if cmd != "" {
				t.Fatalf("not addressed, but command %q", cmd)
			}
			if d := a.Direct(text); d != strings.TrimSpace(text) {
				t.Fatalf("direct %q: %q is not the whole text", text, d)
			}
			return
		}
		if cmd != strings.TrimSpace(cmd) || !strings.Contains(text, cmd) {
			t.Fatalf("command %q is not a trimmed part of %q", cmd, text)
		}
		lead := strings.TrimLeftFunc(text, unicode.IsSpace)
		byPrefix := prefix != "" && strings.HasPrefix(lead, prefix) && cmd != ""
		at := strings.TrimPrefix(lead, "@")
		byName := name != "" && len(at) >= len(name) && strings.EqualFold(at[:len(name)], name)
		if byName {
			rest := at[len(name):]
			byName = rest == "" || strings.ContainsRune(":,", rune(rest[0])) ||
				len(at) < len(lead) && strings.TrimLeftFunc(rest, unicode.IsSpace) != rest
		}
		if !byPrefix && !byName {
			t.Fatalf("%q addressed with name %q, prefix %q (command %q)", text, name, prefix, cmd)
		}
		if a.Direct(text) != cmd {
			t.Fatalf("direct %q: %q, room: %q", text, a.Direct(text), cmd)
		}
	})
}
