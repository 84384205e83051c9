package memory_test

// The memory's trust rule on the shipped NATS permissions
// (deploy/nats/permissions.conf): the note service's role reads and writes
// note's memory and nothing else of JetStream. A real nats-server runs that
// file; the router role makes the buckets; the attacks are what a
// compromised note service would try.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats.go"
)

func TestShippedPermissions(t *testing.T) {
	s, pw := meshtest.ShippedNATS(t, "../../deploy/nats/permissions.conf")
	c := ctx(t)
	router := connect(t, s.ClientURL(), nats.UserInfo("router", pw["BOTMESH_NATS_PASSWORD_ROUTER"]))
	if err := memory.EnsureBuckets(c, router, 1); err != nil {
		t.Fatalf("the router role makes the buckets: %v", err)
	}
	errs, report := meshtest.NewViolations()
	note := connect(t, s.ClientURL(), nats.UserInfo("service-note", pw["BOTMESH_NATS_PASSWORD_SERVICE_NOTE"]), report)

	// What note does: its memory in every scope.
	store, _ := memory.New(note, "note")
	r := req("slack", "T1", "alice", "#ops")
	for _, scope := range memory.Scopes {
		m, _ := store.Of(scope, r)
		if _, err := m.Put(c, "k", []byte("note's "+string(scope))); err != nil {
			t.Fatalf("note puts in its %s memory: %v", scope, err)
		}
		if e, err := m.Get(c, "k"); err != nil || string(e.Value) != "note's "+string(scope) {
			t.Fatalf("note gets from its %s memory: %q, %v", scope, e.Value, err)
		}
		if keys, err := m.Keys(c); err != nil || len(keys) != 1 {
			t.Fatalf("note lists its %s memory: %q, %v", scope, keys, err)
		}
		if err := m.Delete(c, "k"); err != nil {
			t.Fatalf("note forgets in its %s memory: %v", scope, err)
		}
	}

	refused := func(what string) { t.Helper(); errs.Refused(t, what) }
	nn := note.Conn()
	// 1. Write another service's memory.
	short, cancel := context.WithTimeout(c, 2*time.Second)
	defer cancel()
	if _, err := note.Publish(short, "$KV.botmesh_memory_user.todo.x.v.a2V5", []byte("forged")); err == nil {
		t.Error("note wrote todo's memory")
	}
	refused(`Publish to "$KV.botmesh_memory_user.todo.x.v.a2V5"`)
	// 2. Read another service's memory by subject.
	if _, err := nn.Request("$JS.API.DIRECT.GET.KV_botmesh_memory_user.$KV.botmesh_memory_user.todo.x.v.a2V5", nil, 2*time.Second); err == nil {
		t.Error("note read todo's memory by direct get")
	}
	refused(`Publish to "$JS.API.DIRECT.GET.KV_botmesh_memory_user.$KV.botmesh_memory_user.todo.x.v.a2V5"`)
	// 3. Read any message of the bucket by sequence.
	body, _ := json.Marshal(map[string]any{"seq": 1})
	if _, err := nn.Request("$JS.API.DIRECT.GET.KV_botmesh_memory_user", body, 2*time.Second); err == nil {
		t.Error("note read the bucket by sequence")
	}
	refused(`Publish to "$JS.API.DIRECT.GET.KV_botmesh_memory_user"`)
	// 4. List every key's name.
	if _, err := nn.Request("$JS.API.STREAM.INFO.KV_botmesh_memory_user", []byte(`{"subjects_filter":">"}`), 2*time.Second); err == nil {
		t.Error("note read the bucket's stream info")
	}
	refused(`Publish to "$JS.API.STREAM.INFO.KV_botmesh_memory_user"`)
	// 5. Mirror the audit stream into a stream of its own.
	if _, err := nn.Request("$JS.API.STREAM.CREATE.KV_botmesh_memory_x", []byte(`{"name":"KV_botmesh_memory_x","mirror":{"name":"BOTMESH_AUDIT"}}`), 2*time.Second); err == nil {
		t.Error("note made a stream")
	}
	refused(`Publish to "$JS.API.STREAM.CREATE.KV_botmesh_memory_x"`)
	// 6. A consumer that pushes the bucket to a gateway's reply subject.
	if _, err := nn.Request("$JS.API.CONSUMER.CREATE.KV_botmesh_memory_user", []byte(`{"config":{"deliver_subject":"bot.v1.out.web.x.y"}}`), 2*time.Second); err == nil {
		t.Error("note made a consumer")
	}
	refused(`Publish to "$JS.API.CONSUMER.CREATE.KV_botmesh_memory_user"`)
}
