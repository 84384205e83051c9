package router

// Two-way dialogs. A command service may answer with a question
// (ExecResponse.question) instead of a result: the router shows the
// question and keeps the dialog — the service, the command and the
// service's state — under its user and conversation, in the NATS KV bucket
// botmesh_dialogs, so that whichever router replica gets the answer
// continues it. The user's next message there goes to the same service as
// the answer (ExecRequest.answer carries the state), until the service
// answers without a question; "cancel" leaves. A dialog waits
// Config.DialogWindow; an answer after that gets a note that the question
// expired (or, if it is a command, runs as one). Two users in one channel
// have two dialogs: the key is the user's and the conversation's.
//
// A confirmation is a dialog too, one the router owns: the command that
// needs its author's "yes" waits in the same store (dialog.Held), under
// the user's and the conversation's key whatever the thread
// (confirmKey); yes runs it, no or cancel drops it, any other message
// leaves it waiting, for Config.ConfirmWindow.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/router/audit"
	"github.com/botmesh/botmesh/router/directory"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go/jetstream"
)

// DialogBucket is the KV bucket of open dialogs.
const DialogBucket = "botmesh_dialogs"

// MaxDialogState is the most state a service may keep with a question.
const MaxDialogState = 16 << 10

// dialog is an open question of a service to one user in one
// conversation.
type dialog struct {
	Service  string    `json:"service"`
	Command  string    `json:"command"`
	Question string    `json:"question"`
	State    []byte    `json:"state,omitempty"`
	Asked    time.Time `json:"asked"`
	// Held is, in a confirmation, the command waiting for its author's
	// "yes" (a chatops.v1.Event); Service is empty: the router owns it.
	Held []byte `json:"held,omitempty"`
}

// dialogStore keeps open dialogs by key (dialogKey or confirmKey).
type dialogStore interface {
	put(ctx context.Context, key string, d dialog) error
	// take removes and returns the dialog under key; ok is false when
	// there is none. Of two concurrent takes only one gets it.
	take(ctx context.Context, key string) (d dialog, ok bool, err error)
}

// dialogBox wraps the interface for atomic.Pointer.
type dialogBox struct{ dialogStore }

func (r *Router) dialogs() dialogStore { return r.dlg.Load().dialogStore }

func dialogKey(ev *chatopsv1.Event) string {
	return placeKey(ev.GetPlatform(), ev.GetFrom().GetTeam(), ev.GetFrom().GetId(), ev.GetTo(), ev.GetThread())
}

// confirmKey is the key of the confirmation asked of ev's author in ev's
// conversation, in any thread: only the same user in the same place can
// answer it. Its prefix keeps it apart from the dialog of a message with
// no thread.
func confirmKey(ev *chatopsv1.Event) string {
	return "c-" + placeKey(ev.GetPlatform(), ev.GetFrom().GetTeam(), ev.GetFrom().GetId(), ev.GetTo(), "")
}

// placeKey is a hash of one user in one place.
func placeKey(platform, team, user, conversation, thread string) string {
	sum := sha256.Sum256([]byte(platform + "\x00" + team + "\x00" + user + "\x00" + conversation + "\x00" + thread))
	return hex.EncodeToString(sum[:16])
}

// useDialogKV moves dialogs to the shared bucket (made within setupCtx),
// and watches which are open until ctx ends.
func (r *Router) useDialogKV(ctx, setupCtx context.Context, js jetstream.JetStream, replicas int) {
	var kv jetstream.KeyValue
	err := durable.Setup(setupCtx, func(ctx context.Context) (err error) {
		kv, err = durable.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
			Bucket:      DialogBucket,
			Description: "botmesh dialogs: a command service's question waiting for its user's answer",
			// Kept past the window, for the note that an answer came
			// too late; and a confirmation for its window.
			TTL:          max(2*r.cfg.DialogWindow, r.cfg.ConfirmWindow) + time.Minute,
			History:      1,
			MaxValueSize: 2*MaxDialogState + 4096,
			Storage:      jetstream.FileStorage,
			Replicas:     max(replicas, 1),
		})
		return err
	})
	if err != nil {
		r.log.Warn("dialogs stay in this router", "err", err)
		return
	}
	s := &kvDialogs{kv: kv, keys: map[string]keyState{}}
	go s.watch(ctx, r.log)
	r.dlg.Store(&dialogBox{s})
}

// kvDialogs keeps dialogs in the bucket. Every message asks whether its
// author has a dialog open; rather than ask NATS each time (a KV get a
// message: botbench's single-flight p50 was 1174 µs, against 1046 µs
// without dialogs; watching, 977 to 1015 µs, on a shared 2-CPU machine),
// it watches the bucket's keys and asks NATS only for a key it has seen
// put. Until the watch is up, or after it fails, it asks every time.
type kvDialogs struct {
	kv       jetstream.KeyValue
	watching atomic.Bool
	mu       sync.Mutex
	keys     map[string]keyState // as watched, or as this router wrote them
}

// keyState is a key's last known revision, and whether it holds a dialog.
type keyState struct {
	rev  uint64
	open bool
}

// watch follows the bucket's keys until ctx ends.
func (s *kvDialogs) watch(ctx context.Context, log *slog.Logger) {
	w, err := s.kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		log.Warn("not watching the dialogs: every message asks the bucket", "err", err)
		return
	}
	defer func() { _ = w.Stop() }()
	defer s.watching.Store(false)
	for e := range w.Updates() {
		if e == nil { // the keys there at the start are in
			s.watching.Store(true)
			continue
		}
		s.mark(e.Key(), e.Revision(), e.Operation() == jetstream.KeyValuePut)
	}
}

// mark records the state of key at revision rev, unless a later one is
// known (the watch may tell of a delete after this router put the next
// question). rev 0 closes the key whatever it was (the bucket dropped it).
func (s *kvDialogs) mark(key string, rev uint64, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[key]; ok && rev != 0 && rev < k.rev {
		return
	}
	if !open && rev == 0 {
		delete(s.keys, key)
		return
	}
	s.keys[key] = keyState{rev: rev, open: open}
}

// maybeOpen reports whether key may hold a dialog.
func (s *kvDialogs) maybeOpen(key string) bool {
	if !s.watching.Load() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key].open
}

func (s *kvDialogs) put(ctx context.Context, key string, d dialog) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	rev, err := s.kv.Put(ctx, key, b)
	if err != nil {
		return err
	}
	s.mark(key, rev, true) // before the question is shown: the answer finds it here
	return nil
}

func (s *kvDialogs) take(ctx context.Context, key string) (dialog, bool, error) {
	if !s.maybeOpen(key) {
		return dialog{}, false, nil
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.mark(key, 0, false) // expired (the bucket's TTL says nothing to watchers)
		return dialog{}, false, nil
	}
	if err != nil {
		return dialog{}, false, err
	}
	// Delete only the revision read: of two routers taking the same
	// answer, one continues the dialog.
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return dialog{}, false, nil
		}
		return dialog{}, false, err
	}
	var d dialog
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return dialog{}, false, fmt.Errorf("dialog: decode: %w", err)
	}
	return d, true, nil
}

// memDialogs keeps dialogs in this router (no JetStream).
type memDialogs struct {
	mu sync.Mutex
	m  map[string]dialog
}

func newMemDialogs() *memDialogs { return &memDialogs{m: map[string]dialog{}} }

func (s *memDialogs) put(_ context.Context, key string, d dialog) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = d
	return nil
}

func (s *memDialogs) take(_ context.Context, key string) (dialog, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[key]
	delete(s.m, key)
	return d, ok, nil
}

// ask opens a dialog for the question q of the service of cmd, and returns
// the question to show.
func (r *Router) ask(ctx context.Context, ev *chatopsv1.Event, cmd directory.Command, q *chatopsv1.Question, out *outcome) *chatopsv1.Event {
	name := cmd.Pattern()
	if len(q.GetState()) > MaxDialogState {
		out.status = audit.StatusError
		out.err = fmt.Sprintf("question state of %d bytes", len(q.GetState()))
		return r.errorReply(ev, fmt.Sprintf("%s asked a question with %d bytes of state; the limit is %d", name, len(q.GetState()), MaxDialogState))
	}
	d := dialog{Service: cmd.Service, Command: name, Question: q.GetText(), State: q.GetState(), Asked: r.now()}
	if err := r.dialogs().put(ctx, dialogKey(ev), d); err != nil {
		out.status = audit.StatusError
		out.err = err.Error()
		r.log.Error("keeping a dialog", "err", err)
		return r.errorReply(ev, fmt.Sprintf("%s asked a question, and dialogs cannot be kept right now: try again later", name))
	}
	text := q.GetText()
	if text == "" {
		text = name + " asks:"
	}
	return r.reply(ev, text+" (reply, or cancel)")
}

// answer continues the dialog open for ev's author in ev's conversation,
// if there is one: it returns nil when the message is not an answer.
func (r *Router) answer(ctx context.Context, ev *chatopsv1.Event, msg parse.Message, out *outcome) *chatopsv1.Event {
	d, ok, err := r.dialogs().take(ctx, dialogKey(ev))
	if err != nil {
		r.log.Error("reading a dialog", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	out.command, out.service = d.Command, d.Service
	// An answer may be a secret the service asked for: the audit record
	// says what it answered, not what it said.
	out.text = "(an answer to " + d.Command + ")"
	if r.now().Sub(d.Asked) > r.cfg.DialogWindow {
		if _, known := r.resolve(ctx, msg.Key(), msg.Words); known {
			return nil // a command: run it as one
		}
		out.status = audit.StatusError
		return r.errorReply(ev, fmt.Sprintf("%s's question (%s) expired: questions wait %s. Run %s again.", d.Command, strings.TrimSpace(d.Question), r.cfg.DialogWindow, d.Command))
	}
	if strings.EqualFold(msg.Key(), "cancel") {
		out.status = audit.StatusCancelled
		return r.reply(ev, "cancelled: "+d.Command+" asks no more")
	}
	// The policy may have changed since the question.
	if dec := r.decide(ev, d.Command); !dec.Allowed {
		out.rule, out.status = dec.Rule, audit.StatusDenied
		return r.errorReply(ev, fmt.Sprintf("you may not run %q here (policy: %s). Ask an admin if you need it.", d.Command, dec.Rule))
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeoutOf(d.Command))
	defer cancel()
	rep := r.execWith(ctx, ev, msg, directory.Command{Words: strings.Fields(d.Command), Service: d.Service}, out, &chatopsv1.Answer{State: d.State})
	if out.status == "" {
		out.status = audit.StatusOK
		if rep.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR {
			out.status = audit.StatusError
		}
	}
	return rep
}
