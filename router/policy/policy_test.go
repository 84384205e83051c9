package policy

import (
	"strings"
	"testing"
)

const sample = `
default: deny
groups:
  admins: ["slack:UADMIN", "xmpp:ops@example.org", "irc:account:Alice"]
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
		{"admin by xmpp id", Request{Command: "deploy api", Platform: "xmpp", User: "ops@example.org"}, Decision{Allowed: true, Confirm: true, Rule: "admins deploy, confirmed"}},
		{"xmpp admin's id on irc is nobody", Request{Command: "deploy api", Platform: "irc", User: "nick:ops@example.org"}, Decision{Rule: "default"}},
		{"irc account admin", Request{Command: "deploy api", Platform: "irc", User: "account:alice"}, Decision{Allowed: true, Confirm: true, Rule: "admins deploy, confirmed"}},
		{"irc nick equal to the admin's account is nobody", Request{Command: "deploy api", Platform: "irc", User: "nick:alice"}, Decision{Rule: "default"}},
		{"irc nick equal to a slack admin's id is nobody", Request{Command: "deploy api", Platform: "irc", User: "nick:UADMIN"}, Decision{Rule: "default"}},
		{"irc bare id (an old gateway) is nobody", Request{Command: "deploy api", Platform: "irc", User: "alice"}, Decision{Rule: "default"}},
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
		{Request{Command: "get service", Platform: "irc", User: "nick:bob"}, true, false},
		{Request{Command: "health", Platform: "irc", User: "nick:bob"}, true, false},
		{Request{Command: "the three laws", Platform: "irc", User: "nick:bob"}, true, false},
		{Request{Command: "register service", Platform: "slack", User: "U1"}, false, false},
		{Request{Command: "deregister service", Platform: "slack", User: "U1"}, false, false},
		{Request{Command: "query", Platform: "slack", User: "U1"}, false, false},
		{Request{Command: "query greeter greeter.hello", Platform: "slack", User: "U1"}, false, false},
		// The shipped admins group is empty: the terminal is nobody
		// special, and neither is botctl.
		{Request{Command: "deregister service", Platform: "shell", User: "root"}, false, false},
		{Request{Command: "query greeter greeter.hello", Platform: "shell", User: "root"}, false, false},
		{Request{Command: "query go.micro.bot.registry command.exec", Platform: "cli", User: "root"}, false, false},
	} {
		d := p.Decide(tc.req)
		if d.Allowed != tc.allowed || d.Confirm != tc.confirm {
			t.Errorf("%+v: %+v, want allowed %v confirm %v", tc.req, d, tc.allowed, tc.confirm)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":               {"default: deny\nrulez: []\n", "field rulez not found"},
		"bad default":                 {"default: maybe\n", `default must be allow or deny, not "maybe"`},
		"bad effect":                  {"default: deny\nrules:\n  - name: x\n    effect: permit\n", `rule 1 (x): effect must be allow or deny, not "permit"`},
		"unknown group":               {"default: deny\nrules:\n  - groups: [ghosts]\n    effect: allow\n", `rule 1: unknown group "ghosts"`},
		"bad glob":                    {"default: deny\nrules:\n  - commands: [\"[\"]\n    effect: allow\n", `bad command pattern "["`},
		"confirm on deny":             {"default: deny\nrules:\n  - effect: deny\n    confirm: true\n", "confirm only applies to allow"},
		"not yaml":                    {"default: [\n", "parse:"},
		"unqualified user in a group": {"default: deny\ngroups:\n  admins: [U024BE7LH]\n", `group admins: user "U024BE7LH" has no platform: write platform:id`},
		"unqualified user in a rule":  {"default: deny\nrules:\n  - users: [ops@example.org]\n    effect: allow\n", `rule 1: user "ops@example.org" has no platform`},
		"irc user without a kind":     {"default: deny\ngroups:\n  admins: [\"irc:alice\"]\n", `IRC user "irc:alice" must say which kind of id it is: irc:account:NAME`},
		"platform without an id":      {"default: deny\ngroups:\n  admins: [\"slack:\"]\n", `user "slack:" has a platform but no id`},
		"star inside an id":           {"default: deny\ngroups:\n  admins: [\"slack:U0*\"]\n", `* stands only for a whole id`},
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

func TestUsersAccepted(t *testing.T) {
	for _, id := range []string{"*", "slack:*", "slack:U024BE7LH", "xmpp:ops@example.org", "irc:*", "irc:account:alice", "irc:nick:alice", "irc:account:*", "web:web:s1", "shell:root", "test:UADMIN"} {
		if err := CheckUser(id); err != nil {
			t.Errorf("CheckUser(%q): %v", id, err)
		}
	}
}

func TestWildcardUsers(t *testing.T) {
	p, err := Parse([]byte(`
default: deny
rules:
  - name: logged-in irc users
    users: ["irc:account:*"]
    effect: allow
  - name: slack users
    users: ["slack:*"]
    effect: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		platform, user string
		allowed        bool
	}{
		{"irc", "account:alice", true},
		{"irc", "nick:alice", false},
		{"irc", "", false},
		{"slack", "U1", true},
		{"xmpp", "slack:U1", false},
	} {
		if d := p.Decide(Request{Command: "x", Platform: tc.platform, User: tc.user}); d.Allowed != tc.allowed {
			t.Errorf("%s:%s: %+v, want allowed %v", tc.platform, tc.user, d, tc.allowed)
		}
	}
}

// Registry changes ask for confirmation even when the rule that allows
// them does not say so.
func TestRegistryChangesAlwaysConfirm(t *testing.T) {
	p, err := Parse([]byte("default: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	for cmd, confirm := range map[string]bool{
		"register service":                            true,
		"Deregister Service":                          true,
		"query go.micro.registry Registry.Register":   true,
		"query go.micro.registry Registry.Deregister": true,
		"query go.micro.registry Registry.GetService": false,
		"list services":                               false,
	} {
		if d := p.Decide(Request{Command: cmd, Platform: "slack", User: "U1"}); !d.Allowed || d.Confirm != confirm {
			t.Errorf("%s: %+v, want allowed, confirm %v", cmd, d, confirm)
		}
	}
}

// A policy can say which services and methods query may call, for whom.
func TestQueryByServiceAndMethod(t *testing.T) {
	p, err := Parse([]byte(`
default: deny
groups:
  admins: ["slack:UADMIN"]
rules:
  - name: anyone may greet
    commands: [query, "query greeter Greeter.*"]
    effect: allow
  - name: admins query anything
    commands: ["query *"]
    groups: [admins]
    effect: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd, user string
		allowed   bool
	}{
		{"query greeter Greeter.Hello", "U1", true},
		{"query", "U1", true},
		{"query billing Billing.Refund", "U1", false},
		{"query greeter Other.Hello", "U1", false},
		{"query billing Billing.Refund", "UADMIN", true},
	} {
		if d := p.Decide(Request{Command: tc.cmd, Platform: "slack", User: tc.user}); d.Allowed != tc.allowed {
			t.Errorf("%s by %s: %+v, want allowed %v", tc.cmd, tc.user, d, tc.allowed)
		}
	}
}

func TestWithAdmins(t *testing.T) {
	p := Default()
	if got := p.AdminsLine(); !strings.HasPrefix(got, "no admins: nobody may register") {
		t.Errorf("shipped default: %q", got)
	}
	q, err := p.WithAdmins("shell:alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.AdminsLine(); got != "admins: shell:alice" {
		t.Errorf("AdminsLine: %q", got)
	}
	if d := q.Decide(Request{Command: "deregister service", Platform: "shell", User: "alice"}); !d.Allowed || !d.Confirm {
		t.Errorf("added admin: %+v", d)
	}
	if d := p.Decide(Request{Command: "deregister service", Platform: "shell", User: "alice"}); d.Allowed {
		t.Errorf("WithAdmins changed the original: %+v", d)
	}
	if _, err := p.WithAdmins("alice"); err == nil || !strings.Contains(err.Error(), "has no platform") {
		t.Errorf("unqualified admin: %v", err)
	}
	other, err := Parse([]byte("default: allow\ngroups:\n  ops: [\"slack:U1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.WithAdmins("shell:alice"); err == nil {
		t.Error("no admins group: no error")
	}
	if got := other.AdminsLine(); !strings.HasPrefix(got, "the policy has no admins group") {
		t.Errorf("AdminsLine without the group: %q", got)
	}
}

// A * in a command pattern matches slashes too: path.Match's * stops at
// one, which let "query billing Billing/x.Refund" past a deny of
// "query billing *".
func TestGlobCrossesSlashes(t *testing.T) {
	p, err := Parse([]byte("default: allow\nrules:\n  - name: no billing\n    commands: [\"query billing *\"]\n    effect: deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"query billing Billing.Refund", "query billing Billing/x.Refund", "query billing a/b/c"} {
		if d := p.Decide(Request{Command: cmd, Platform: "slack", User: "U1"}); d.Allowed {
			t.Errorf("%s: %+v", cmd, d)
		}
	}
}

// The compose environment's policy loads, opens greeter to everyone and
// keeps the rest of query and the registry changes for admins.
func TestComposePolicy(t *testing.T) {
	p, err := Load("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		allowed bool
	}{
		{"query greeter Greeter.Hello", true},
		{"echo", true},
		{"list services", true},
		{"query billing Billing.Refund", false},
		{"query", false},
		{"register service", false},
	} {
		if d := p.Decide(Request{Command: tc.command, Platform: "cli", User: "ops"}); d.Allowed != tc.allowed {
			t.Errorf("%s for cli:ops: allowed=%v (rule %q), want %v", tc.command, d.Allowed, d.Rule, tc.allowed)
		}
	}
}
