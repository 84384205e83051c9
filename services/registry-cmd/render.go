package registrycmd

import (
	"fmt"
	"sort"
	"strings"

	"go-micro.dev/v4/registry"
)

// Rendering is for chat on a phone: short lines, one fact per line, lists
// with "•", no alignment that needs a monospace font.

// RenderList renders `list services`: a count, then one service per line
// with its node count.
func RenderList(list []Listed) string {
	if len(list) == 0 {
		return "No services are registered."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", plural(len(list), "service", "services"))
	for _, l := range list {
		b.WriteString("\n")
		if l.Err != nil {
			fmt.Fprintf(&b, "%s (nodes unknown: %v)", l.Name, l.Err)
			continue
		}
		fmt.Fprintf(&b, "%s (%s)", l.Name, plural(l.Nodes, "node", "nodes"))
	}
	return b.String()
}

// RenderService renders `get service NAME`: for each version, its nodes
// (id, address, metadata) and endpoints (name, request and response
// types).
func RenderService(svcs []*registry.Service) string {
	svcs = append([]*registry.Service(nil), svcs...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Version < svcs[j].Version })
	var b strings.Builder
	for i, s := range svcs {
		if i == 0 {
			b.WriteString(s.Name)
		}
		b.WriteString("\n")
		if i > 0 {
			b.WriteString("\n")
		}
		version := s.Version
		if version == "" {
			version = "(none)"
		}
		fmt.Fprintf(&b, "version %s", version)
		if len(s.Metadata) > 0 {
			fmt.Fprintf(&b, "\nmetadata: %s", renderMeta(s.Metadata))
		}

		nodes := append([]*registry.Node(nil), s.Nodes...)
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Id < nodes[j].Id })
		fmt.Fprintf(&b, "\n%s:", plural(len(nodes), "node", "nodes"))
		for _, n := range nodes {
			if n == nil {
				continue
			}
			fmt.Fprintf(&b, "\n• %s\n  address: %s", n.Id, orNone(n.Address))
			if len(n.Metadata) > 0 {
				fmt.Fprintf(&b, "\n  metadata: %s", renderMeta(n.Metadata))
			}
		}

		eps := append([]*registry.Endpoint(nil), s.Endpoints...)
		sort.Slice(eps, func(i, j int) bool { return eps[i].Name < eps[j].Name })
		if len(eps) == 0 {
			b.WriteString("\nno endpoints listed")
			continue
		}
		fmt.Fprintf(&b, "\n%s:", plural(len(eps), "endpoint", "endpoints"))
		for _, e := range eps {
			if e == nil {
				continue
			}
			fmt.Fprintf(&b, "\n• %s", e.Name)
			if e.Metadata["stream"] == "true" {
				b.WriteString(" (stream)")
			}
			fmt.Fprintf(&b, "\n  request: %s\n  response: %s", RenderValue(e.Request), RenderValue(e.Response))
		}
	}
	return b.String()
}

// RenderValue renders a request or response type as go-micro registers it:
// its type name, then its fields in braces, nested types likewise.
func RenderValue(v *registry.Value) string {
	if v == nil {
		return "(none)"
	}
	return renderValue(v, 0)
}

func renderValue(v *registry.Value, depth int) string {
	typ := v.Type
	if typ == "" {
		typ = v.Name
	}
	if len(v.Values) == 0 || depth >= 4 {
		return typ
	}
	fields := make([]string, 0, len(v.Values))
	for _, f := range v.Values {
		if f == nil {
			continue
		}
		fields = append(fields, f.Name+" "+renderValue(f, depth+1))
	}
	return typ + " {" + strings.Join(fields, ", ") + "}"
}

func renderMeta(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
