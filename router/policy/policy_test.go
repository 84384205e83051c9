package policy

import (
	"strings"
	"testing"
)

const sample = `
default: deny
groups:
  admins: ["slack:UADMIN", "ops@example.org"]
  oncall: ["slack:UONCALL"]
rules:
  - name: nobody deploys from the public channel
    commands: ["deploy *"]
    channels: [CPUBLIC]
    effect: deny
  - name: admins deploy, confirmed
    commands: ["deploy *"]
    groups: [admins]
    effect: allow
    confirm: true
  - name: on-call may restart on slack
    commands: [restart]
    groups: [oncall]
    platforms: [slack]
    effect: allow
  - name: read-only
    commands: [help, ping, "list services"]
    effect: allow
  - name: everyone on the terminal
    users: ["shell:*"]
    effect: allow
`

func TestDecide(t *testing.T) {
	p, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		{"read-only for anyone", Request{Command: "list services", Platform: "irc", User: "bob"}, Decision{Allowed: true, Rule: "read-only"}},
		{"no rule: default deny", Request{Command: "echo", Platform: "slack", User: "U1"}, Decision{Rule: "default"}},
		{"admin by platform id", Request{Command: "deploy api", Platform: "slack", User: "UADMIN", Channel: "COPS"}, Decision{Allowed: true, Confirm: true, Rule: "admins deploy, confirmed"}},
		{"admin by bare id on any platform", Request{Command: "deploy api", Platform: "xmpp", User: "ops@example.org"}, Decision{Allowed: true, Confirm: true, Rule: "admins deploy, confirmed"}},
		{"earlier deny wins over a later allow", Request{Command: "deploy api", Platform: "slack", User: "UADMIN", Channel: "CPUBLIC"}, Decision{Rule: "nobody deploys from the public channel"}},
		{"non-admin falls to the default", Request{Command: "deploy api", Platform: "slack", User: "U1"}, Decision{Rule: "default"}},
		{"same id on another platform is another user", Request{Command: "restart", Platform: "irc", User: "UONCALL"}, Decision{Rule: "default"}},
		{"group and platform both match", Request{Command: "restart", Platform: "slack", User: "UONCALL"}, Decision{Allowed: true, Rule: "on-call may restart on slack"}},
		{"platform wildcard user", Request{Command: "anything", Platform: "shell", User: "root"}, Decision{Allowed: true, Rule: "everyone on the terminal"}},
		{"commands compared lower-case", Request{Command: "PING", Platform: "web", User: "s1"}, Decision{Allowed: true, Rule: "read-only"}},
		{"empty user is nobody", Request{Command: "restart", Platform: "slack"}, Decision{Rule: "default"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Decide(tc.req); got != tc.want {
				t.Errorf("Decide(%+v) = %+v, want %+v", tc.req, got, tc.want)
			}
		})
	}
}

func TestShippedDefault(t *testing.T) {
	p := Default()
	for _, tc := range []struct {
		req     Request
		allowed bool
		confirm bool
	}{
		{Request{Command: "list services", Platform: "slack", User: "U1"}, true, false},
		{Request{Command: "echo", Platform: "web", User: "s1"}, true, false},
		{Request{Command: "mycommand", Platform: "slack", User: "U1"}, true, false},
		{Request{Command: "deregister service", Platform: "slack", User: "U1"}, false, false},
		{Request{Command: "query", Platform: "slack", User: "U1"}, false, false},
		{Request{Command: "deregister service", Platform: "shell", User: "root"}, true, true},
		{Request{Command: "query", Platform: "shell", User: "root"}, true, false},
	} {
		d := p.Decide(tc.req)
		if d.Allowed != tc.allowed || d.Confirm != tc.confirm {
			t.Errorf("%+v: %+v, want allowed %v confirm %v", tc.req, d, tc.allowed, tc.confirm)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":   {"default: deny\nrulez: []\n", "field rulez not found"},
		"bad default":     {"default: maybe\n", `default must be allow or deny, not "maybe"`},
		"bad effect":      {"default: deny\nrules:\n  - name: x\n    effect: permit\n", `rule 1 (x): effect must be allow or deny, not "permit"`},
		"unknown group":   {"default: deny\nrules:\n  - groups: [ghosts]\n    effect: allow\n", `rule 1: unknown group "ghosts"`},
		"bad glob":        {"default: deny\nrules:\n  - commands: [\"[\"]\n    effect: allow\n", `bad command pattern "["`},
		"confirm on deny": {"default: deny\nrules:\n  - effect: deny\n    confirm: true\n", "confirm only applies to allow"},
		"not yaml":        {"default: [\n", "parse:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzDecide: any policy text either fails to parse or decides every
// request without panicking.
func FuzzDecide(f *testing.F) {
	f.Add([]byte(sample), "deploy api", "slack", "UADMIN", "C1")
	f.Add(DefaultYAML(), "query", "shell", "root", "shell")
	f.Fuzz(func(t *testing.T, doc []byte, cmd, platform, user, channel string) {
		p, err := Parse(doc)
		if err != nil {
			return
		}
		d := p.Decide(Request{Command: cmd, Platform: platform, User: user, Channel: channel})
		if d.Confirm && !d.Allowed {
			t.Fatalf("a denial asks for confirmation: %+v", d)
		}
		if d.Rule == "" {
			t.Fatal("decision without a rule")
		}
	})
}
