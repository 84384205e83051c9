// Package policy decides who may run which command, where. A policy is a
// YAML file of rules; each rule names the commands, users, groups,
// channels and platforms it is about, and allows or denies. The router asks
// for a Decision before it runs anything, and explains denials to the user.
//
// Precedence: rules are checked in order and the first one that matches a
// request decides, as in a firewall; if none matches, the policy's default
// applies. A rule matches when every field it sets matches (a field left out
// matches anything).
//
//	default: allow
//	groups:
//	  admins: ["slack:U024BE7LH", "xmpp:ops@example.org"]
//	rules:
//	  - name: registry changes for admins, confirmed
//	    commands: ["register service", "deregister service"]
//	    groups: [admins]
//	    effect: allow
//	    confirm: true
//	  - name: registry changes are for admins only
//	    commands: ["register service", "deregister service"]
//	    effect: deny
package policy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Effects of a rule.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Policy is a parsed policy file.
type Policy struct {
	// Default is the effect when no rule matches: allow or deny.
	Default string `yaml:"default"`
	// Groups name sets of users (see Rule.Users for the form of a user).
	Groups map[string][]string `yaml:"groups"`
	// Rules, in order: the first that matches decides.
	Rules []Rule `yaml:"rules"`
}

// Rule allows or denies a set of requests.
type Rule struct {
	// Name is shown to a user the rule denies, and in the audit record.
	Name string `yaml:"name"`
	// Commands are command patterns ("list services", "echo", "ping") or
	// globs ("deregister *", "*"), compared lower-case.
	Commands []string `yaml:"commands"`
	// Users are immutable user ids, each either "platform:id"
	// ("slack:U024BE7LH") or a bare id for any platform; "platform:*"
	// means every user of a platform.
	Users []string `yaml:"users"`
	// Groups are names from Policy.Groups.
	Groups []string `yaml:"groups"`
	// Channels are conversation ids (a Slack channel, an XMPP room).
	Channels []string `yaml:"channels"`
	// Platforms are platform names (slack, xmpp, irc, web, shell).
	Platforms []string `yaml:"platforms"`
	// Effect is allow or deny.
	Effect string `yaml:"effect"`
	// Confirm, on an allow, makes the user confirm before the command
	// runs.
	Confirm bool `yaml:"confirm"`
}

// Request is what a decision is about.
type Request struct {
	Command  string // the matched command pattern, lower-case ("list services")
	Platform string
	User     string // immutable user id
	Channel  string
}

// Decision is the answer for one request.
type Decision struct {
	Allowed bool
	// Confirm means the user must confirm before the command runs.
	Confirm bool
	// Rule names the rule that decided ("default" when none matched).
	Rule string
}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the shipped policy: every command for everyone, except
// register service, deregister service (confirmed) and query, which are for
// the admins group (the local terminal, the shell of the all-in-one, until
// you name your admins).
func Default() *Policy {
	p, err := Parse(defaultYAML)
	if err != nil {
		panic("policy: the shipped default does not parse: " + err.Error())
	}
	return p
}

// DefaultYAML returns the text of the shipped policy, to start one's own
// from.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Load reads a policy file.
func Load(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	return p, nil
}

// Parse reads a policy from YAML. Unknown fields, unknown groups, bad
// effects and bad globs are errors: a policy that does not say what its
// author meant must not start.
func Parse(b []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate reports every problem in p.
func (p *Policy) Validate() error {
	var errs []error
	switch p.Default {
	case Allow, Deny:
	default:
		errs = append(errs, fmt.Errorf("default must be allow or deny, not %q", p.Default))
	}
	for i, r := range p.Rules {
		where := fmt.Sprintf("rule %d", i+1)
		if r.Name != "" {
			where += fmt.Sprintf(" (%s)", r.Name)
		}
		switch r.Effect {
		case Allow, Deny:
		default:
			errs = append(errs, fmt.Errorf("%s: effect must be allow or deny, not %q", where, r.Effect))
		}
		if r.Confirm && r.Effect == Deny {
			errs = append(errs, fmt.Errorf("%s: confirm only applies to allow", where))
		}
		for _, g := range r.Groups {
			if _, ok := p.Groups[g]; !ok {
				errs = append(errs, fmt.Errorf("%s: unknown group %q", where, g))
			}
		}
		for _, c := range r.Commands {
			if _, err := path.Match(strings.ToLower(c), ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: bad command pattern %q: %w", where, c, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Decide returns the decision for req: that of the first matching rule, or
// the default.
func (p *Policy) Decide(req Request) Decision {
	for i := range p.Rules {
		r := &p.Rules[i]
		if p.matches(r, req) {
			return Decision{Allowed: r.Effect == Allow, Confirm: r.Effect == Allow && r.Confirm, Rule: r.label(i)}
		}
	}
	return Decision{Allowed: p.Default == Allow, Rule: "default"}
}

func (r *Rule) label(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("rule %d", i+1)
}

func (p *Policy) matches(r *Rule, req Request) bool {
	if len(r.Commands) > 0 && !anyGlob(r.Commands, strings.ToLower(req.Command)) {
		return false
	}
	if len(r.Platforms) > 0 && !contains(r.Platforms, req.Platform) {
		return false
	}
	if len(r.Channels) > 0 && !contains(r.Channels, req.Channel) {
		return false
	}
	if len(r.Users) > 0 || len(r.Groups) > 0 {
		in := userIn(r.Users, req)
		for _, g := range r.Groups {
			in = in || userIn(p.Groups[g], req)
		}
		if !in {
			return false
		}
	}
	return true
}

func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), s); ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// userIn reports whether the request's user is one of users.
func userIn(users []string, req Request) bool {
	for _, u := range users {
		switch {
		case u == "*":
			return true
		case u == req.Platform+":*":
			return true
		case req.User != "" && (u == req.Platform+":"+req.User || u == req.User):
			return true
		}
	}
	return false
}
