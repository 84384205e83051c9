// Package memory gives a command service a key-value memory that lasts:
// one per user, per conversation or for the whole team, kept in NATS KV
// buckets.
//
//	store, _ := memory.New(js, "note")
//	func (h *Handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
//		mem, err := h.store.Of(memory.Conversation, req)
//		…
//		_, err = mem.Put(ctx, "last", []byte("hello"))
//
// # Scopes
//
// The scope comes from the ExecRequest the router sends, never from the
// message's words: a user reaches their own memory, the memory of the
// conversation they are in and their team's (the caller's platform and
// team: a Slack workspace, an XMPP domain, an IRC network; the web chat and
// the shell have one team each). A conversation is a channel, room or
// direct-message id (Event.to); threads of a channel share its memory.
//
// # Buckets and trust
//
// The routers make three buckets at start (EnsureBuckets), one per scope,
// shared by every command service: botmesh_memory_user,
// botmesh_memory_conversation and botmesh_memory_team. A key is
// <service>.<scope>.v.<key>, so NATS subject permissions can give a service
// role its own keys and no other service's (see deploy/nats/permissions.conf):
// it writes on $KV.<bucket>.<service>.> and reads by direct get of those
// subjects only. Memory never makes a bucket, a stream or a consumer: a role
// that may create one can mirror any stream, and one that may create a
// consumer can deliver a stream's messages to any subject.
//
// What NATS does not enforce: within its own keys a service reads every
// user's and conversation's memory. The scoping by caller is this package's
// rule, kept by services that use it; users are kept apart because the
// caller and conversation come from the router.
//
// # Limits
//
// Each scope has limits (Limits): the size of a value and the number of keys
// one user, conversation or team may hold; past them Put returns a
// *LimitError that says which limit in a sentence a user can read. The
// bucket refuses a value over MaxValueLimit whatever the service asks.
//
// # History
//
// The buckets keep the last BucketHistory revisions of a key. History reads
// them through a JetStream consumer, so it needs a role that may create
// consumers on the bucket (the all-in-one's parts, a trusted deployment).
package memory

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Scope is whose memory it is.
type Scope string

// The scopes.
const (
	// User is the caller's memory, the same in every conversation.
	User Scope = "user"
	// Conversation is the memory of the channel, room or direct
	// conversation the command was said in, shared by its members.
	Conversation Scope = "conversation"
	// Team is the memory of the caller's team (platform and team id),
	// shared by all its users.
	Team Scope = "team"
)

// Scopes lists every scope.
var Scopes = []Scope{User, Conversation, Team}

// Bucket returns the KV bucket of scope.
func Bucket(scope Scope) string { return "botmesh_memory_" + string(scope) }

// Bucket settings, the same for every scope.
const (
	// MaxValueLimit is the largest value a bucket takes (its
	// MaxValueSize); Limits.MaxValueBytes may not be larger.
	MaxValueLimit = 64 << 10
	// BucketHistory is how many revisions of a key a bucket keeps.
	BucketHistory = 8
	// BucketMaxBytes bounds each bucket; past it writes are refused.
	BucketMaxBytes = 256 << 20
	// MaxKeyBytes is the longest key.
	MaxKeyBytes = 128
	// MaxKeysLimit is the most keys Limits.MaxKeys may allow (the list of
	// a scope's keys is one value of at most MaxValueLimit).
	MaxKeysLimit = 256
)

// EnsureBuckets makes the three memory buckets, or updates them to this
// version's settings, with replicas copies. The routers call it at start.
func EnsureBuckets(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, s := range Scopes {
		_, err := durable.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
			Bucket:       Bucket(s),
			Description:  "botmesh command services' " + string(s) + " memory (sdk/memory)",
			History:      BucketHistory,
			MaxValueSize: MaxValueLimit,
			MaxBytes:     BucketMaxBytes,
			Storage:      jetstream.FileStorage,
			Replicas:     max(replicas, 1),
		})
		if err != nil {
			return fmt.Errorf("memory: bucket %s: %w", Bucket(s), err)
		}
	}
	return nil
}

// Limits bound one user's, conversation's or team's memory in a service.
type Limits struct {
	// MaxValueBytes is the largest value (at most MaxValueLimit).
	MaxValueBytes int
	// MaxKeys is how many keys one scope may hold (at most MaxKeysLimit).
	MaxKeys int
}

// DefaultLimits are the limits of a scope a service does not set.
var DefaultLimits = Limits{MaxValueBytes: 4 << 10, MaxKeys: 100}

// Errors. Their texts are sentences a service may show to users.
var (
	// ErrNotFound: the key holds nothing.
	ErrNotFound = errors.New("memory: nothing is kept under that key")
	// ErrNoCaller: the request does not say who asks or where (a Micro
	// Bot router, or a caller that is not a router).
	ErrNoCaller = errors.New("memory: the request does not say who asks and where: call this command through a botmesh router")
	// ErrNoBucket: the memory buckets are not there yet.
	ErrNoBucket = errors.New("memory: the memory buckets are not there yet (the routers make them at start)")
	// ErrDenied: NATS does not let this service use its memory.
	ErrDenied = errors.New("memory: NATS refused this service access to its memory (check its role's permissions)")
	// ErrFull: the bucket is full.
	ErrFull = errors.New("memory: the memory store is full")
	// ErrBusy: other writers kept changing the scope's key list.
	ErrBusy = errors.New("memory: too many changes at once; try again")
)

// LimitError says which limit a Put went past.
type LimitError struct {
	Scope Scope
	// What is "value", "keys" or "key".
	What string
	// Limit is the limit, Got what was asked.
	Limit, Got int
}

func (e *LimitError) Error() string {
	switch e.What {
	case "keys":
		return fmt.Sprintf("this %s memory is full: it holds at most %d entries; forget one first", e.Scope, e.Limit)
	case "key":
		return fmt.Sprintf("a key in %s memory is at most %d bytes; this one is %d", e.Scope, e.Limit, e.Got)
	default:
		return fmt.Sprintf("a value in %s memory is at most %d bytes; this one is %d", e.Scope, e.Limit, e.Got)
	}
}

// Store is one command service's memory, in every scope.
type Store struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	service string // the key token for the service
	limits  map[Scope]Limits
	timeout time.Duration
}

// Option configures a Store.
type Option func(*Store) error

// WithLimits sets the limits of scope.
func WithLimits(scope Scope, l Limits) Option {
	return func(s *Store) error {
		if !slices.Contains(Scopes, scope) {
			return fmt.Errorf("memory: no scope %q", scope)
		}
		if l.MaxValueBytes < 1 || l.MaxValueBytes > MaxValueLimit {
			return fmt.Errorf("memory: %s values: %d bytes is not between 1 and %d", scope, l.MaxValueBytes, MaxValueLimit)
		}
		if l.MaxKeys < 1 || l.MaxKeys > MaxKeysLimit {
			return fmt.Errorf("memory: %s keys: %d is not between 1 and %d", scope, l.MaxKeys, MaxKeysLimit)
		}
		s.limits[scope] = l
		return nil
	}
}

// New returns the memory of the command service named service (its
// command name, e.g. "note"), on js's connection.
func New(js jetstream.JetStream, service string, opts ...Option) (*Store, error) {
	if service == "" {
		return nil, errors.New("memory: empty service name")
	}
	s := &Store{js: js, nc: js.Conn(), service: serviceToken(service), limits: map[Scope]Limits{}, timeout: 5 * time.Second}
	for _, sc := range Scopes {
		s.limits[sc] = DefaultLimits
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// serviceToken turns a command name (lower-case letters, digits, '-', '_'
// and dots) into one subject token: dots become '=', which names do not
// hold.
func serviceToken(name string) string { return strings.ReplaceAll(name, ".", "=") }

// KeyPrefix returns the prefix of every key of service in a bucket, e.g.
// "note.", for subject permissions: $KV.<bucket>.<KeyPrefix>>.
func KeyPrefix(service string) string { return serviceToken(service) + "." }

// Of returns the memory of scope for the caller of req.
func (s *Store) Of(scope Scope, req *chatopsv1.ExecRequest) (*Memory, error) {
	lim, ok := s.limits[scope]
	if !ok {
		return nil, fmt.Errorf("memory: no scope %q", scope)
	}
	conv, caller := req.GetConversation(), req.GetCaller()
	platform := conv.GetPlatform()
	var parts []string
	switch scope {
	case User:
		parts = []string{platform, caller.GetTeam(), caller.GetId()}
		if caller.GetId() == "" {
			return nil, ErrNoCaller
		}
	case Conversation:
		parts = []string{platform, conv.GetChannel()}
		if conv.GetChannel() == "" {
			return nil, ErrNoCaller
		}
	case Team:
		parts = []string{platform, caller.GetTeam()}
	}
	if platform == "" {
		return nil, ErrNoCaller
	}
	return &Memory{s: s, scope: scope, limits: lim, bucket: Bucket(scope),
		prefix: s.service + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x00"))) + "."}, nil
}

// Memory is one scope's memory of one service: one user's, one
// conversation's or one team's.
type Memory struct {
	s      *Store
	scope  Scope
	limits Limits
	bucket string
	prefix string // <service>.<scope id>.
}

// Entry is one value kept in memory.
type Entry struct {
	Key   string
	Value []byte
	// Revision is the bucket's sequence of this write.
	Revision uint64
	// Time is when it was written.
	Time time.Time
}

func (m *Memory) indexKey() string { return m.prefix + "i" }

func (m *Memory) valueKey(key string) string {
	return m.prefix + "v." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

func (m *Memory) subject(k string) string { return "$KV." + m.bucket + "." + k }

// Get returns the value of key, or ErrNotFound.
func (m *Memory) Get(ctx context.Context, key string) (Entry, error) {
	if err := m.checkKey(key); err != nil {
		return Entry{}, err
	}
	e, err := m.get(ctx, m.valueKey(key))
	if err != nil {
		return Entry{}, err
	}
	if e.deleted {
		return Entry{}, ErrNotFound
	}
	e.Key = key
	return e.Entry, nil
}

// Keys returns the scope's keys, oldest first.
func (m *Memory) Keys(ctx context.Context) ([]string, error) {
	keys, _, err := m.index(ctx)
	return keys, err
}

// Put keeps value under key and returns its revision. A new key counts
// against Limits.MaxKeys, checked atomically against other writers.
func (m *Memory) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := m.checkKey(key); err != nil {
		return 0, err
	}
	if len(value) > m.limits.MaxValueBytes {
		return 0, &LimitError{Scope: m.scope, What: "value", Limit: m.limits.MaxValueBytes, Got: len(value)}
	}
	err := m.changeIndex(ctx, func(keys []string) ([]string, error) {
		if slices.Contains(keys, key) {
			return nil, nil
		}
		if len(keys) >= m.limits.MaxKeys {
			return nil, &LimitError{Scope: m.scope, What: "keys", Limit: m.limits.MaxKeys, Got: len(keys) + 1}
		}
		return append(keys, key), nil
	})
	if err != nil {
		return 0, err
	}
	ack, err := m.s.js.Publish(ctx, m.subject(m.valueKey(key)), value)
	if err != nil {
		return 0, m.natsErr(err)
	}
	return ack.Sequence, nil
}

// Delete forgets key and its history. Deleting a key that holds nothing
// returns ErrNotFound.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := m.checkKey(key); err != nil {
		return err
	}
	err := m.changeIndex(ctx, func(keys []string) ([]string, error) {
		i := slices.Index(keys, key)
		if i < 0 {
			return nil, ErrNotFound
		}
		return slices.Delete(keys, i, i+1), nil
	})
	if err != nil {
		return err
	}
	// A purge marker with a roll-up: the bucket drops every earlier
	// revision.
	msg := &nats.Msg{Subject: m.subject(m.valueKey(key)), Header: nats.Header{"KV-Operation": {"PURGE"}, "Nats-Rollup": {"sub"}}}
	if _, err := m.s.js.PublishMsg(ctx, msg); err != nil {
		return m.natsErr(err)
	}
	return nil
}

// History returns the revisions of key the bucket keeps, oldest first
// (at most BucketHistory; a Delete drops them). It reads them through a
// JetStream consumer: see the package comment for the rights it needs.
func (m *Memory) History(ctx context.Context, key string) ([]Entry, error) {
	if err := m.checkKey(key); err != nil {
		return nil, err
	}
	kv, err := m.s.js.KeyValue(ctx, m.bucket)
	if err != nil {
		return nil, m.natsErr(err)
	}
	hist, err := kv.History(ctx, m.valueKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, m.natsErr(err)
	}
	var out []Entry
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		out = append(out, Entry{Key: key, Value: e.Value(), Revision: e.Revision(), Time: e.Created()})
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

func (m *Memory) checkKey(key string) error {
	if key == "" || !utf8.ValidString(key) {
		return errors.New("memory: a key is non-empty UTF-8 text")
	}
	if len(key) > MaxKeyBytes {
		return &LimitError{Scope: m.scope, What: "key", Limit: MaxKeyBytes, Got: len(key)}
	}
	return nil
}

// index returns the scope's keys and the revision of their list (0: none
// yet).
func (m *Memory) index(ctx context.Context) ([]string, uint64, error) {
	e, err := m.get(ctx, m.indexKey())
	if errors.Is(err, ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if e.deleted || len(e.Value) == 0 {
		return nil, e.Revision, nil
	}
	var keys []string
	if err := json.Unmarshal(e.Value, &keys); err != nil {
		return nil, 0, fmt.Errorf("memory: the list of keys is damaged: %w", err)
	}
	return keys, e.Revision, nil
}

// changeIndex applies change to the scope's key list and writes it if the
// list did not change meanwhile, else tries again after a random pause
// (ErrBusy after maxTries, or when ctx ends). change returns nil to leave
// the list as it is.
func (m *Memory) changeIndex(ctx context.Context, change func([]string) ([]string, error)) error {
	for try := range maxTries {
		if try > 0 {
			pause := time.Duration(rand.Int64N(int64(min(try, 20)) * int64(2*time.Millisecond)))
			select {
			case <-ctx.Done():
				return ErrBusy
			case <-time.After(pause):
			}
		}
		keys, rev, err := m.index(ctx)
		if err != nil {
			return err
		}
		next, err := change(keys)
		if err != nil || next == nil {
			return err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = m.s.js.Publish(ctx, m.subject(m.indexKey()), b, jetstream.WithExpectLastSequencePerSubject(rev))
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			continue
		}
		if err != nil {
			return m.natsErr(err)
		}
		return nil
	}
	return ErrBusy
}

// maxTries bounds the writes of a key list that other writers keep
// changing: 50 writers adding a key to one scope at once all got through
// (services/note's TestNoteLimit).
const maxTries = 200

type entry struct {
	Entry
	deleted bool
}

// get reads the last revision of bucket key k by a direct get of its
// subject: the one read a role limited to its own subjects may make.
func (m *Memory) get(ctx context.Context, k string) (entry, error) {
	ctx, cancel := context.WithTimeout(ctx, m.s.timeout)
	defer cancel()
	subj := "$JS.API.DIRECT.GET.KV_" + m.bucket + "." + m.subject(k)
	msg, err := m.s.nc.RequestWithContext(ctx, subj, nil)
	if err != nil {
		return entry{}, m.natsErr(err)
	}
	switch status := msg.Header.Get("Status"); status {
	case "":
	case "404":
		return entry{}, ErrNotFound
	default:
		return entry{}, fmt.Errorf("memory: reading %s: %s %s", m.bucket, status, msg.Header.Get("Description"))
	}
	rev, _ := strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
	t, _ := time.Parse(time.RFC3339Nano, msg.Header.Get("Nats-Time-Stamp"))
	op := msg.Header.Get("KV-Operation")
	return entry{Entry: Entry{Value: msg.Data, Revision: rev, Time: t}, deleted: op == "DEL" || op == "PURGE"}, nil
}

// natsErr turns what NATS says into an error a user can read.
func (m *Memory) natsErr(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return ErrNoBucket
	case errors.Is(err, nats.ErrPermissionViolation):
		return ErrDenied
	case errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum bytes"):
		return ErrFull
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("memory: %s did not answer in time (NATS busy, or a permission refused)", m.bucket)
	}
	return fmt.Errorf("memory: %s: %w", m.bucket, err)
}
