// Package registrycmd serves the micro CLI's registry commands through
// chat, from one command service: list services, get service NAME,
// register service DEFINITION and deregister service DEFINITION. It reads
// and writes the go-micro registry it is given (the mesh's: nats, mdns or
// another).
//
// With the nats and mdns registries a registration belongs to the process
// that made it: a service registered from chat stays registered while this
// service runs, and a node registered by another process can only be
// removed by that process (deregister says so when it happens).
package registrycmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/command"
	"github.com/botmesh/botmesh/sdk/suggest"
	"github.com/botmesh/botmesh/services/registry-cmd/jsonarg"
	"go-micro.dev/v4/registry"
)

// Name is the command service's name (registry name <namespace>.registry).
const Name = "registry"

// The command patterns the service serves.
const (
	CmdList       = "list services"
	CmdGet        = "get service"
	CmdRegister   = "register service"
	CmdDeregister = "deregister service"
)

// DefaultMaxBytes is the longest answer sent to chat; longer ones are cut
// with a note. Slack shows about 4,000 characters before "show more".
const DefaultMaxBytes = 16 << 10

// Handler serves the registry commands. Build it with New.
type Handler struct {
	reg       registry.Registry
	namespace string
	log       *slog.Logger
	maxBytes  int
}

var _ command.Validator = (*Handler)(nil)

// Option configures New.
type Option func(*Handler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithNamespace sets the namespace of command services, which register and
// deregister refuse to touch: planting a command from chat would let its
// author read what users send it (default go.micro.bot).
func WithNamespace(ns string) Option { return func(h *Handler) { h.namespace = ns } }

// WithMaxBytes sets the longest answer (default DefaultMaxBytes).
func WithMaxBytes(n int) Option { return func(h *Handler) { h.maxBytes = n } }

// New returns a handler on reg.
func New(reg registry.Registry, opts ...Option) *Handler {
	h := &Handler{reg: reg, namespace: "go.micro.bot", log: slog.New(slog.DiscardHandler), maxBytes: DefaultMaxBytes}
	for _, o := range opts {
		o(h)
	}
	if h.maxBytes <= 0 {
		h.maxBytes = DefaultMaxBytes
	}
	return h
}

// Help lists the four commands, in the Micro Bot's form ([name]
// placeholders); a description's second line, an example, is shown by
// "help COMMAND".
func (h *Handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = "list services | get service [name] | register service [definition] | deregister service [definition]"
	rsp.Description = "The micro CLI's registry commands"
	rsp.Commands = []*chatopsv1.CommandSpec{
		{Pattern: CmdList, Usage: "list services", Description: "Lists the registered services with their node counts\nExample: list services"},
		{Pattern: CmdGet, Usage: "get service [name]", Description: "Shows a service's versions, nodes and endpoints\nExample: get service greeter"},
		{Pattern: CmdRegister, Usage: "register service [definition]", Description: "Registers a service given as go-micro JSON\nExample: register service " + Example},
		{Pattern: CmdDeregister, Usage: "deregister service [definition]", Description: "Deregisters nodes (name and node ids are enough)\nExample: deregister service " + DeregisterExample},
	}
	return nil
}

// Exec runs one command. Every failure is an answer in rsp.Error, worded
// for the user; Exec itself only fails if the request cannot be read.
func (h *Handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	cmd := commandOf(req)
	log := h.log.With("command", cmd, "caller", req.GetCaller().GetId())
	var (
		out string
		err error
	)
	switch cmd {
	case CmdList:
		out, err = h.list(ctx, req)
	case CmdGet:
		out, err = h.get(ctx, req)
	case CmdRegister:
		out, err = h.register(ctx, req)
	case CmdDeregister:
		out, err = h.deregister(ctx, req)
	default:
		err = fmt.Errorf("this service serves %s, %s, %s and %s, not %q", CmdList, CmdGet, CmdRegister, CmdDeregister, clip(cmd, 60))
	}
	if err != nil {
		var rerr *RegistryError
		if errors.As(err, &rerr) {
			log.Warn("registry failed", "err", err)
		} else {
			log.Debug("refused", "err", err)
		}
		rsp.Error = err.Error()
		return nil
	}
	rsp.Result = command.Cut([]byte(out), h.maxBytes)
	return nil
}

// Validate checks a request as Exec would read it, without changing the
// registry: the router asks before it has the user confirm a registration
// or deregistration, so a bad definition, a protected name or a node that
// is not there is refused at once. rsp.Error says what is wrong; empty, the
// command would run.
func (h *Handler) Validate(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	var err error
	switch cmd := commandOf(req); cmd {
	case CmdRegister:
		_, err = h.toRegister(req)
	case CmdDeregister:
		_, err = h.toDeregister(ctx, req)
	case CmdList, CmdGet:
	default:
		err = fmt.Errorf("this service serves %s, %s, %s and %s, not %q", CmdList, CmdGet, CmdRegister, CmdDeregister, clip(cmd, 60))
	}
	if err != nil {
		rsp.Error = err.Error()
	}
	return nil
}

// commandOf returns the matched pattern: req.Command from a botmesh router,
// else the first two words (a Micro Bot router sends only args).
func commandOf(req *chatopsv1.ExecRequest) string {
	if c := strings.ToLower(strings.Join(strings.Fields(req.GetCommand()), " ")); strings.Contains(c, " ") {
		return c
	}
	if len(req.GetArgs()) >= 2 {
		return strings.ToLower(req.GetArgs()[0] + " " + req.GetArgs()[1])
	}
	return strings.ToLower(strings.Join(req.GetArgs(), " "))
}

// text returns the message text (req.Text, or the args joined for a Micro
// Bot router).
func text(req *chatopsv1.ExecRequest) string {
	if t := req.GetText(); t != "" {
		return t
	}
	return strings.Join(req.GetArgs(), " ")
}

func (h *Handler) list(ctx context.Context, req *chatopsv1.ExecRequest) (string, error) {
	if len(req.GetArgs()) > 2 {
		return "", fmt.Errorf("list services takes no arguments; to see one service, type get service %s", clip(req.GetArgs()[2], 80))
	}
	list, err := List(ctx, h.reg)
	if err != nil {
		return "", err
	}
	return RenderList(list), nil
}

func (h *Handler) get(ctx context.Context, req *chatopsv1.ExecRequest) (string, error) {
	args := req.GetArgs()
	switch {
	case len(args) < 3:
		return "", errors.New("which service? Usage: get service [name] (list services shows the names)")
	case len(args) > 3:
		return "", fmt.Errorf("get service takes one [name], not %d words", len(args)-2)
	}
	svcs, err := Lookup(ctx, h.reg, args[2])
	if err != nil {
		return "", err
	}
	return RenderService(svcs), nil
}

func (h *Handler) protected(name string) bool {
	return h.namespace != "" && (name == h.namespace || strings.HasPrefix(name, h.namespace+"."))
}

// toRegister returns the service a register request would register, or
// why it cannot.
func (h *Handler) toRegister(req *chatopsv1.ExecRequest) (*registry.Service, error) {
	svc, err := ParseDefinition(jsonarg.After(text(req), 2), ForRegister)
	if err != nil {
		return nil, err
	}
	if h.protected(svc.Name) {
		return nil, fmt.Errorf("%s is in the namespace of botmesh commands (%s.*): commands are added by running their service, not from chat", svc.Name, h.namespace)
	}
	return svc, nil
}

func (h *Handler) register(ctx context.Context, req *chatopsv1.ExecRequest) (string, error) {
	svc, err := h.toRegister(req)
	if err != nil {
		return "", err
	}
	if err := h.reg.Register(svc, registry.RegisterContext(ctx)); err != nil {
		return "", &RegistryError{Op: "register " + svc.Name, Err: err}
	}
	h.log.Info("registered", "service", svc.Name, "version", svc.Version, "nodes", len(svc.Nodes), "caller", req.GetCaller().GetId())
	ids := make([]string, len(svc.Nodes))
	for i, n := range svc.Nodes {
		ids[i] = n.Id + " at " + n.Address
	}
	version := svc.Version
	if version == "" {
		version = "(none)"
	}
	out := fmt.Sprintf("Registered %s version %s with %s: %s.", svc.Name, version, plural(len(ids), "node", "nodes"), strings.Join(ids, ", "))
	switch h.reg.String() {
	case "nats", "mdns":
		out += fmt.Sprintf("\nWith the %s registry it stays registered while this registry service runs.", h.reg.String())
	}
	return out, nil
}

// toDeregister returns what a deregister request would deregister, by
// version (sorted), or why it cannot: the nodes it names must be
// registered.
func (h *Handler) toDeregister(ctx context.Context, req *chatopsv1.ExecRequest) ([]*registry.Service, error) {
	def, err := ParseDefinition(jsonarg.After(text(req), 2), ForDeregister)
	if err != nil {
		return nil, err
	}
	if h.protected(def.Name) {
		return nil, fmt.Errorf("%s is in the namespace of botmesh commands (%s.*): stop its service to remove it", def.Name, h.namespace)
	}
	current, err := Lookup(ctx, h.reg, def.Name)
	if err != nil {
		return nil, err
	}
	// Deregister what the registry holds (version, address), for each node
	// id asked: registries match nodes within a version.
	byVersion := map[string]*registry.Service{}
	var missing []string
	for _, want := range def.Nodes {
		found := false
		for _, s := range current {
			if def.Version != "" && s.Version != def.Version {
				continue
			}
			for _, n := range s.Nodes {
				if n.Id != want.Id {
					continue
				}
				found = true
				d := byVersion[s.Version]
				if d == nil {
					d = &registry.Service{Name: s.Name, Version: s.Version, Metadata: s.Metadata, Endpoints: s.Endpoints}
					byVersion[s.Version] = d
				}
				d.Nodes = append(d.Nodes, n)
			}
		}
		if !found {
			missing = append(missing, want.Id)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s has no node %s; its nodes: %s", def.Name, suggest.Quote(clipAll(missing)), strings.Join(nodeIDs(current), ", "))
	}
	versions := make([]string, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	out := make([]*registry.Service, len(versions))
	for i, v := range versions {
		out[i] = byVersion[v]
	}
	return out, nil
}

func (h *Handler) deregister(ctx context.Context, req *chatopsv1.ExecRequest) (string, error) {
	todo, err := h.toDeregister(ctx, req)
	if err != nil {
		return "", err
	}
	def := todo[0] // toDeregister returns a service for each of at least one node, or an error
	var ids []string
	for _, d := range todo {
		if err := h.reg.Deregister(d, registry.DeregisterContext(ctx)); err != nil {
			return "", &RegistryError{Op: "deregister " + d.Name, Err: err}
		}
		for _, n := range d.Nodes {
			ids = append(ids, n.Id)
		}
	}
	h.log.Info("deregistered", "service", def.Name, "nodes", ids, "caller", req.GetCaller().GetId())

	// The nats and mdns registries are answered by the process that
	// registered a node: check that it is really gone.
	after, err := h.reg.GetService(def.Name, registry.GetContext(ctx))
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return "", &RegistryError{Op: "get service " + def.Name, Err: err}
	}
	left := map[string]bool{}
	for _, id := range nodeIDs(after) {
		left[id] = true
	}
	var still []string
	for _, id := range ids {
		if left[id] {
			still = append(still, id)
		}
	}
	if len(still) > 0 {
		return "", fmt.Errorf("%s %s still registered: with the %s registry only the process that registered a node can remove it; stop that process (or deregister from the registry service that registered it)",
			def.Name+" node "+strings.Join(still, ", "), isAre(len(still)), h.reg.String())
	}
	out := fmt.Sprintf("Deregistered %s: %s.", def.Name, plural(len(ids), "node", "nodes")+" ("+strings.Join(ids, ", ")+")")
	if rest := len(left); rest > 0 {
		out += fmt.Sprintf(" %s still registered.", plural(rest, "other node is", "other nodes are"))
	} else {
		out += " It has no nodes left."
	}
	return out, nil
}

func nodeIDs(svcs []*registry.Service) []string {
	var ids []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	sort.Strings(ids)
	return ids
}

func clipAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = clip(v, 60)
	}
	return out
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
