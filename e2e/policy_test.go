package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest"
	"github.com/botmesh/botmesh/internal/allinone"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router"
	"github.com/botmesh/botmesh/router/policy"
	"github.com/nats-io/nuid"
)

// Who may change the registry, with the real registry-cmd service: a
// non-admin's deregister is refused and the service stays; an admin's is
// asked to confirm, confirmed and done; someone else's yes does nothing.
func TestPolicyWithRegistryCmd(t *testing.T) {
	pol, err := policy.Parse([]byte(`
default: allow
groups:
  admins: ["test:UADMIN"]
rules:
  - name: registry changes are for admins, confirmed
    commands: ["register service", "deregister service"]
    groups: [admins]
    effect: allow
    confirm: true
  - name: admins only
    commands: ["register service", "deregister service"]
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	in := adaptertest.New("test")
	runAllInOne(t, allinone.Config{Router: router.Config{Policy: pol}}, nil, in)
	as := func(user, text string) *chatopsv1.Event {
		t.Helper()
		id := nuid.Next()
		in.SayEvent(&chatopsv1.Event{Id: id, From: &chatopsv1.Peer{Id: user}, To: "C-ops", Data: []byte(text)})
		rep := in.Reply(t, 15*time.Second)
		if rep.InReplyTo != id {
			t.Fatalf("reply to %q answers %s", text, rep.InReplyTo)
		}
		return rep
	}
	const billing = `{"name":"billing","version":"1.0.0","nodes":[{"id":"billing-1","address":"10.0.0.5:9090"}]}`

	// The admin registers billing, confirming.
	if rep := as("UADMIN", "register service "+billing); !strings.Contains(string(rep.Data), "needs your confirmation") {
		t.Fatalf("register: %q", rep.Data)
	}
	if rep := as("UADMIN", "yes"); !strings.HasPrefix(string(rep.Data), "Registered billing version 1.0.0") {
		t.Fatalf("confirmed register: %q", rep.Data)
	}
	if rep := as("U2", "list services"); !strings.Contains(string(rep.Data), "billing (1 node)") {
		t.Fatalf("billing not listed: %q", rep.Data)
	}

	// A non-admin cannot remove it.
	rep := as("U2", `deregister service {"name":"billing","nodes":[{"id":"billing-1"}]}`)
	if rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.HasPrefix(string(rep.Data), `you may not run "deregister service" here (policy: admins only)`) {
		t.Errorf("non-admin deregister: %s %q", rep.Type, rep.Data)
	}
	if rep := as("U2", "list services"); !strings.Contains(string(rep.Data), "billing (1 node)") {
		t.Errorf("billing gone after a refused deregister: %q", rep.Data)
	}

	// The admin asks; someone else's yes does nothing; the admin's does it.
	if rep := as("UADMIN", `deregister service {"name":"billing","nodes":[{"id":"billing-1"}]}`); !strings.Contains(string(rep.Data), "reply yes within") {
		t.Fatalf("admin deregister: %q", rep.Data)
	}
	if rep := as("U2", "yes"); rep.Type != chatopsv1.EventType_EVENT_TYPE_ERROR || !strings.HasPrefix(string(rep.Data), "nothing to confirm") {
		t.Errorf("another user's yes: %s %q", rep.Type, rep.Data)
	}
	if rep := as("U2", "list services"); !strings.Contains(string(rep.Data), "billing (1 node)") {
		t.Errorf("billing gone after another user's yes: %q", rep.Data)
	}
	if rep := as("UADMIN", "yes"); !strings.HasPrefix(string(rep.Data), "Deregistered billing") {
		t.Errorf("admin's yes: %q", rep.Data)
	}
	if rep := as("U2", "list services"); strings.Contains(string(rep.Data), "billing") {
		t.Errorf("billing still listed: %q", rep.Data)
	}
}
