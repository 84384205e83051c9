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
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Effects of a rule.
const (
	Allow = "allow"
	Deny  = "deny"
)

// AdminGroup is the group the shipped policy gives registry changes and
// query to, and the one WithAdmins adds to.
const AdminGroup = "admins"

// ChangesRegistry are the command names (globs, lower-case) that change the
// registry: an allowed request for one of them always needs confirmation,
// however it is reached: the registry-cmd commands, and a query of a
// go-micro registry service's Register or Deregister.
var ChangesRegistry = []string{
	"register service",
	"deregister service",
	"query * registry.register",
	"query * registry.deregister",
}

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
	// globs ("deregister *", "*"), compared lower-case. A query is named
	// "query SERVICE METHOD" ("query greeter Greeter.*", "query *").
	Commands []string `yaml:"commands"`
	// Users are immutable user ids, always "platform:id"
	// ("slack:U024BE7LH", "xmpp:ops@example.org"); on IRC
	// "irc:account:NAME" for a logged-in account or "irc:nick:NAME" for a
	// bare nick (which anyone can take while it is free). An id ending in
	// ":*" means every such user ("slack:*", "irc:account:*"); "*" means
	// everyone.
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
	// Command is the matched command pattern ("list services"), or for a
	// query "query SERVICE METHOD".
	Command string
	// Platform is the platform the message came from, taken from its
	// NATS subject.
	Platform string
	// User is the immutable id the platform's gateway gives the author,
	// without the platform ("U024BE7LH", "account:alice" on IRC).
	User    string
	Channel string
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
// the admins group. The group is empty: nobody may run them until the
// operator names admins in a policy file (or, in the all-in-one, the local
// terminal's user, added with WithAdmins).
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
	groups := make([]string, 0, len(p.Groups))
	for g := range p.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		for _, u := range p.Groups[g] {
			if err := CheckUser(u); err != nil {
				errs = append(errs, fmt.Errorf("group %s: %w", g, err))
			}
		}
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
		for _, u := range r.Users {
			if err := CheckUser(u); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errors.Join(errs...)
}

var platformName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// CheckUser reports whether id is a user as policies name them: "*", or
// "platform:id" with a lower-case platform name; on IRC
// "irc:account:NAME" or "irc:nick:NAME"; a final ":*" for every such user.
// An id without a platform is refused: it would match that id on every
// platform, so that anyone who can choose their id somewhere (an IRC nick,
// a web session name) could pass for, say, a Slack admin.
func CheckUser(id string) error {
	if id == "*" {
		return nil
	}
	platform, rest, ok := strings.Cut(id, ":")
	if !ok || !platformName.MatchString(platform) {
		return fmt.Errorf("user %q has no platform: write platform:id (slack:U024BE7LH, xmpp:ops@example.org, irc:account:alice), since a bare id would match that id on every platform, where anyone may be able to take it", id)
	}
	if rest == "" {
		return fmt.Errorf("user %q has a platform but no id (%s:* means every %s user)", id, platform, platform)
	}
	if platform == "irc" && rest != "*" {
		kind, name, _ := strings.Cut(rest, ":")
		if kind != "account" && kind != "nick" || name == "" {
			return fmt.Errorf("IRC user %q must say which kind of id it is: irc:account:NAME for a logged-in account (SASL, the account tag), or irc:nick:NAME for a bare nick, which anyone can take while it is free", id)
		}
	}
	if i := strings.IndexByte(id, '*'); i >= 0 && !(i == len(id)-1 && strings.HasSuffix(id, ":*")) {
		return fmt.Errorf("user %q: * stands only for a whole id (slack:*, irc:account:*)", id)
	}
	return nil
}

// canonicalUser is the form ids are compared in: IRC names are compared
// ignoring ASCII case, as IRC servers compare nicks and accounts (every
// server's case mapping folds at least ASCII letters).
func canonicalUser(id string) string {
	if strings.HasPrefix(id, "irc:") {
		return asciiLower(id)
	}
	return id
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// WithAdmins returns a copy of p whose admins group also holds ids (the
// all-in-one's terminal user, say); p is not changed. It fails on an id
// CheckUser refuses, and when p has no admins group (a policy of one's
// own whose rules name other groups: edit it instead).
func (p *Policy) WithAdmins(ids ...string) (*Policy, error) {
	if _, ok := p.Groups[AdminGroup]; !ok {
		return nil, fmt.Errorf("policy: no %q group to add %s to", AdminGroup, strings.Join(ids, ", "))
	}
	var errs []error
	for _, id := range ids {
		if err := CheckUser(id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	q := *p
	q.Groups = make(map[string][]string, len(p.Groups))
	for g, users := range p.Groups {
		q.Groups[g] = slices.Clone(users)
	}
	for _, id := range ids {
		if !slices.Contains(q.Groups[AdminGroup], id) {
			q.Groups[AdminGroup] = append(q.Groups[AdminGroup], id)
		}
	}
	return &q, nil
}

// Admins returns the members of the admins group, in the policy's order
// (nil when it has none, or no such group).
func (p *Policy) Admins() []string { return slices.Clone(p.Groups[AdminGroup]) }

// AdminsLine is the sentence a router logs at start, saying who the admins
// are.
func (p *Policy) AdminsLine() string {
	admins, ok := p.Groups[AdminGroup]
	switch {
	case !ok:
		return "the policy has no admins group: who may change the registry and query services is up to its rules"
	case len(admins) == 0:
		return "no admins: nobody may register or deregister services or query them until you name admins in the policy's admins group (e.g. slack:U024BE7LH, irc:account:alice) and start the routers with --policy"
	}
	return "admins: " + strings.Join(admins, ", ")
}

// Decide returns the decision for req: that of the first matching rule, or
// the default.
func (p *Policy) Decide(req Request) Decision {
	user := ""
	if req.User != "" {
		user = canonicalUser(req.Platform + ":" + req.User)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if p.matches(r, req, user) {
			allowed := r.Effect == Allow
			confirm := allowed && (r.Confirm || anyGlob(ChangesRegistry, strings.ToLower(req.Command)))
			return Decision{Allowed: allowed, Confirm: confirm, Rule: r.label(i)}
		}
	}
	allowed := p.Default == Allow
	return Decision{Allowed: allowed, Confirm: allowed && anyGlob(ChangesRegistry, strings.ToLower(req.Command)), Rule: "default"}
}

func (r *Rule) label(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("rule %d", i+1)
}

// matches reports whether r matches req, whose user, qualified and
// canonical, is user.
func (p *Policy) matches(r *Rule, req Request, user string) bool {
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
		in := userIn(r.Users, user)
		for _, g := range r.Groups {
			in = in || userIn(p.Groups[g], user)
		}
		if !in {
			return false
		}
	}
	return true
}

func anyGlob(patterns []string, s string) bool {
	var unslashed string
	for _, p := range patterns {
		p = strings.ToLower(p)
		if !strings.ContainsAny(p, `*?[\`) {
			// A plain name: most patterns are.
			if p == s {
				return true
			}
			continue
		}
		if unslashed == "" {
			unslashed = unslash(s)
		}
		if ok, _ := path.Match(unslash(p), unslashed); ok {
			return true
		}
	}
	return false
}

// unslash hides slashes from path.Match, whose * stops at one: a query
// of "Billing/x.Refund" must not slip past a rule about "query billing *".
func unslash(s string) string {
	if strings.IndexByte(s, '/') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "/", "\x1f")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// userIn reports whether user, platform-qualified and canonical ("" for
// nobody), is one of users (as CheckUser allows them).
func userIn(users []string, user string) bool {
	for _, u := range users {
		if u == "*" {
			return true
		}
		if user == "" {
			continue
		}
		u = canonicalUser(u)
		if u == user || strings.HasSuffix(u, ":*") && strings.HasPrefix(user, u[:len(u)-1]) && len(user) > len(u)-1 {
			return true
		}
	}
	return false
}
