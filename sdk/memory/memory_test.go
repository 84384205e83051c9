package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// req is what a router sends when user (of team) says something in channel.
func req(platform, team, user, channel string) *chatopsv1.ExecRequest {
	return &chatopsv1.ExecRequest{
		Caller:       &chatopsv1.Peer{Id: user, Team: team},
		Conversation: &chatopsv1.Conversation{Platform: platform, Channel: channel},
	}
}

func connect(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	return meshtest.JetStream(t, url, opts...)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// setUp starts NATS and makes the buckets, as a router does.
func setUp(t *testing.T, opts ...func(*server.Options)) (*server.Server, jetstream.JetStream) {
	t.Helper()
	s := meshtest.NATS(t, opts...)
	js := connect(t, s.ClientURL())
	if err := memory.EnsureBuckets(ctx(t), js, 1); err != nil {
		t.Fatal(err)
	}
	return s, js
}

func TestScopesKeepApart(t *testing.T) {
	_, js := setUp(t)
	c := ctx(t)
	store, err := memory.New(js, "note")
	if err != nil {
		t.Fatal(err)
	}
	of := func(scope memory.Scope, r *chatopsv1.ExecRequest) *memory.Memory {
		m, err := store.Of(scope, r)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	aliceOps := req("slack", "T1", "alice", "#ops")
	bobOps := req("slack", "T1", "bob", "#ops")
	aliceDev := req("slack", "T1", "alice", "#dev")
	aliceIRC := req("irc", "libera", "alice", "#ops")

	for _, tc := range []struct {
		scope     memory.Scope
		writer    *chatopsv1.ExecRequest
		sees, not []*chatopsv1.ExecRequest
		seesNames string
	}{
		{memory.User, aliceOps, []*chatopsv1.ExecRequest{aliceDev}, []*chatopsv1.ExecRequest{bobOps, aliceIRC}, "alice in another channel"},
		{memory.Conversation, aliceOps, []*chatopsv1.ExecRequest{bobOps}, []*chatopsv1.ExecRequest{aliceDev, aliceIRC}, "bob in the same channel"},
		{memory.Team, aliceOps, []*chatopsv1.ExecRequest{bobOps, aliceDev}, []*chatopsv1.ExecRequest{aliceIRC}, "the team"},
	} {
		t.Run(string(tc.scope), func(t *testing.T) {
			key := "k-" + string(tc.scope)
			if _, err := of(tc.scope, tc.writer).Put(c, key, []byte("secret "+string(tc.scope))); err != nil {
				t.Fatal(err)
			}
			for _, r := range append([]*chatopsv1.ExecRequest{tc.writer}, tc.sees...) {
				e, err := of(tc.scope, r).Get(c, key)
				if err != nil || string(e.Value) != "secret "+string(tc.scope) {
					t.Errorf("%s memory of %v: got %q, %v; want the value (%s shares it)", tc.scope, r, e.Value, err, tc.seesNames)
				}
			}
			for _, r := range tc.not {
				if e, err := of(tc.scope, r).Get(c, key); !errors.Is(err, memory.ErrNotFound) {
					t.Errorf("%s memory of %v: got %q, %v; want ErrNotFound", tc.scope, r, e.Value, err)
				}
			}
		})
	}

	// Another service's memory of the same conversation is its own.
	other, err := memory.New(js, "todo")
	if err != nil {
		t.Fatal(err)
	}
	om, err := other.Of(memory.Conversation, aliceOps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := om.Get(c, "k-conversation"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("service todo read note's memory: %v", err)
	}
}

func TestPutGetDeleteKeysHistory(t *testing.T) {
	_, js := setUp(t)
	c := ctx(t)
	store, _ := memory.New(js, "note")
	m, err := store.Of(memory.Conversation, req("web", "", "s1", "room"))
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"b", "a", "ünïcode key/with.dots", "b"} {
		if _, err := m.Put(c, k, fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := m.Keys(c)
	if err != nil || strings.Join(keys, "|") != "b|a|ünïcode key/with.dots" {
		t.Fatalf("keys: %q, %v; want the three keys, oldest first", keys, err)
	}
	e, err := m.Get(c, "b")
	if err != nil || string(e.Value) != "v3" {
		t.Fatalf("get b: %q, %v; want v3", e.Value, err)
	}
	hist, err := m.History(c, "b")
	if err != nil || len(hist) != 2 || string(hist[0].Value) != "v0" || string(hist[1].Value) != "v3" {
		t.Fatalf("history of b: %v, %v; want v0 then v3", hist, err)
	}
	if err := m.Delete(c, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(c, "b"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("get after delete: %v; want ErrNotFound", err)
	}
	if _, err := m.History(c, "b"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("history after delete: %v; want ErrNotFound (a delete forgets the history)", err)
	}
	if err := m.Delete(c, "b"); !errors.Is(err, memory.ErrNotFound) {
		t.Errorf("second delete: %v; want ErrNotFound", err)
	}
	keys, _ = m.Keys(c)
	if strings.Join(keys, "|") != "a|ünïcode key/with.dots" {
		t.Errorf("keys after delete: %q", keys)
	}
	// Put again after a delete.
	if _, err := m.Put(c, "b", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if e, err := m.Get(c, "b"); err != nil || string(e.Value) != "again" {
		t.Errorf("get after put again: %q, %v", e.Value, err)
	}
}

func TestLimits(t *testing.T) {
	_, js := setUp(t)
	c := ctx(t)
	store, err := memory.New(js, "note", memory.WithLimits(memory.Conversation, memory.Limits{MaxValueBytes: 10, MaxKeys: 3}))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := store.Of(memory.Conversation, req("irc", "net", "nick", "#c"))
	_, err = m.Put(c, "k", []byte("12345678901"))
	if err == nil || err.Error() != "a value in conversation memory is at most 10 bytes; this one is 11" {
		t.Errorf("value over the limit: %v", err)
	}
	for i := range 3 {
		if _, err := m.Put(c, fmt.Sprint(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Put(c, "3", []byte("x"))
	var le *memory.LimitError
	if !errors.As(err, &le) || err.Error() != "this conversation memory is full: it holds at most 3 entries; forget one first" {
		t.Errorf("fourth key: %v", err)
	}
	if _, err := m.Put(c, "2", []byte("y")); err != nil {
		t.Errorf("changing a key at the limit: %v", err)
	}
	if _, err := m.Put(c, strings.Repeat("k", memory.MaxKeyBytes+1), []byte("x")); err == nil || !strings.Contains(err.Error(), "a key in conversation memory is at most 128 bytes") {
		t.Errorf("long key: %v", err)
	}
	// The user scope keeps its default limits.
	u, _ := store.Of(memory.User, req("irc", "net", "nick", "#c"))
	if _, err := u.Put(c, "k", []byte("12345678901")); err != nil {
		t.Errorf("user memory with default limits: %v", err)
	}
	// Limits beyond the bucket's are refused.
	if _, err := memory.New(js, "x", memory.WithLimits(memory.Team, memory.Limits{MaxValueBytes: memory.MaxValueLimit + 1, MaxKeys: 1})); err == nil {
		t.Error("a value limit over the bucket's was accepted")
	}
}

// Writers racing to add keys never take a scope past its key limit.
func TestKeyLimitUnderConcurrentWriters(t *testing.T) {
	_, js := setUp(t)
	c := ctx(t)
	store, _ := memory.New(js, "note", memory.WithLimits(memory.User, memory.Limits{MaxValueBytes: 100, MaxKeys: 5}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, full := 0, 0
	for i := range 12 {
		wg.Go(func() {
			m, _ := store.Of(memory.User, req("web", "", "u", "c"))
			_, err := m.Put(c, fmt.Sprint("k", i), []byte("v"))
			mu.Lock()
			defer mu.Unlock()
			var le *memory.LimitError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &le):
				full++
			default:
				t.Errorf("put k%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	m, _ := store.Of(memory.User, req("web", "", "u", "c"))
	keys, _ := m.Keys(c)
	if ok != 5 || full != 7 || len(keys) != 5 {
		t.Errorf("12 writers, limit 5: %d kept, %d refused, %d keys; want 5, 7, 5", ok, full, len(keys))
	}
}

func TestErrorsSaySomething(t *testing.T) {
	s := meshtest.NATS(t)
	js := connect(t, s.ClientURL())
	c := ctx(t)
	store, _ := memory.New(js, "note")
	if _, err := store.Of(memory.User, &chatopsv1.ExecRequest{Args: []string{"note"}}); !errors.Is(err, memory.ErrNoCaller) {
		t.Errorf("a request without caller (a Micro Bot router): %v; want ErrNoCaller", err)
	}
	m, _ := store.Of(memory.User, req("web", "", "u", "c"))
	if _, err := m.Put(c, "k", []byte("v")); !errors.Is(err, memory.ErrNoBucket) {
		t.Errorf("put before the routers made the buckets: %v; want ErrNoBucket", err)
	}
	if _, err := m.Get(c, "k"); !errors.Is(err, memory.ErrNoBucket) {
		t.Errorf("get before the routers made the buckets: %v; want ErrNoBucket", err)
	}
}

// Memory lives in the JetStream store: a NATS server restarted on the same
// store directory still has it.
func TestSurvivesNATSRestart(t *testing.T) {
	dir := t.TempDir()
	keepDir := func(o *server.Options) { o.StoreDir = dir }
	s, js := setUp(t, keepDir)
	c := ctx(t)
	store, _ := memory.New(js, "note")
	m, _ := store.Of(memory.Team, req("xmpp", "example.org", "a@example.org", "room@conf"))
	if _, err := m.Put(c, "k", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	js.Conn().Close()
	s.Shutdown()
	s.WaitForShutdown()

	s2 := meshtest.NATS(t, keepDir)
	store2, _ := memory.New(connect(t, s2.ClientURL()), "note")
	m2, _ := store2.Of(memory.Team, req("xmpp", "example.org", "b@example.org", "other@conf"))
	if e, err := m2.Get(c, "k"); err != nil || string(e.Value) != "kept" {
		t.Errorf("after a restart: %q, %v; want kept", e.Value, err)
	}
}
