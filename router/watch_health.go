package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/botmesh/botmesh/sdk/mesh"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/client"
	dbgpb "go-micro.dev/v4/debug/proto"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
)

// Health watches. "watch greeter health 3" tells the conversation when
// greeter's health fails 3 times in a row, and when it is healthy again.
// A check asks every node of the service for Debug.Health, as the health
// command does (services/query), each by its own address; it fails when
// the service has no node or any node does not answer "ok".
//
// One router checks each watched service every Config.WatchHealthEvery:
// the seen value (s.<target>, a healthSeen) is written at every check, and
// a router checks only when that value has not changed for the interval
// (by its own clock: no router's clock is compared with another's). It
// first claims the check by rewriting the value at the revision it read
// (one router's write wins), then checks, then announces, then records the
// result at the revision of its claim. The count of failures in a row thus
// lives in NATS KV: any router continues it, and it survives restarts.
// Announcements have message ids named for the run of failures (the
// revision of the claim that recorded its first failure), so a router
// that dies after announcing leaves a repeat to the next, which the reply
// stream drops within its duplicate window.

// healthWord is the word after SERVICE in "watch SERVICE health [N]".
const healthWord = "health"

// Bounds of N in "watch SERVICE health N".
const (
	defaultHealthAfter = 3
	maxHealthAfter     = 100
)

// healthAfterMeta is the key, in the meta of a health watch's stored
// event, of the failures in a row its conversation is told after.
const healthAfterMeta = "botmesh.watch.health_after"

// maxHealthTimeout bounds one health check of a node.
const maxHealthTimeout = 5 * time.Second

// healthSeen is the seen value of a health target.
type healthSeen struct {
	// Failures is how many checks in a row failed (0: the last passed).
	Failures int `json:"failures"`
	// Run names the current run of failures: the revision of the claim
	// whose check failed first. Announcements of the run are named for it.
	Run uint64 `json:"run,omitempty"`
	// Reason is why the last check failed.
	Reason string `json:"reason,omitempty"`
	// Checker is the router that claimed the check under way, if any.
	Checker string `json:"checker,omitempty"`
}

func decodeHealthSeen(b []byte) healthSeen {
	var s healthSeen
	_ = json.Unmarshal(b, &s) // a value of another shape counts as healthy
	return s
}

func (s healthSeen) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// healthTarget returns the target of "watch SERVICE health".
func healthTarget(service string) string { return "health:" + service }

// healthService returns the service of a health target, and whether it is
// one.
func healthService(target string) (string, bool) { return strings.CutPrefix(target, "health:") }

// parseHealthAfter reads the N of "watch SERVICE health [N]".
func parseHealthAfter(words []string) (int, string) {
	if len(words) == 0 {
		return defaultHealthAfter, ""
	}
	n, err := strconv.Atoi(words[0])
	if err != nil || n < 1 || n > maxHealthAfter || len(words) > 1 {
		return 0, fmt.Sprintf("usage: watch SERVICE health [N]: N is how many failed checks in a row are told, a whole number from 1 to %d (default %d), not %q",
			maxHealthAfter, defaultHealthAfter, clipWords(strings.Join(words, " "), 40))
	}
	return n, ""
}

// healthAfter returns the N of a stored health watch.
func healthAfter(set *chatopsv1.Event) int {
	if n, err := strconv.Atoi(set.GetMeta()[healthAfterMeta]); err == nil && n >= 1 {
		return n
	}
	return defaultHealthAfter
}

// healthEvery is how often a watched service's health is checked.
func (r *Router) healthEvery() time.Duration { return r.cfg.WatchHealthEvery }

// healthTimeout bounds one check of one node: within the interval.
func (r *Router) healthTimeout() time.Duration { return min(maxHealthTimeout, r.healthEvery()/2) }

// lookAtHealth checks service's health now: ok, or why not. err says the
// registry could not be read (no check: the service is not to blame).
func (r *Router) lookAtHealth(ctx context.Context, service string) (ok bool, why string, err error) {
	svcs, err := r.m.Registry().GetService(service)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return false, "", err
	}
	var nodes []*registry.Node
	for _, s := range svcs {
		for _, n := range s.Nodes {
			if n != nil {
				nodes = append(nodes, n)
			}
		}
	}
	if len(nodes) == 0 {
		return false, "it has no node", nil
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Id < nodes[j].Id })
	whys := make([]string, len(nodes))
	dbg := dbgpb.NewDebugService(service, r.watch.cl)
	limit := r.healthTimeout()
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			nctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			rsp, err := dbg.Health(nctx, &dbgpb.HealthRequest{Service: service},
				mesh.WithNode(n), client.WithRetries(0), client.WithRequestTimeout(limit))
			whys[i] = nodeHealth(nctx, rsp, err, limit)
		})
	}
	wg.Wait()
	var failing []string
	for i, why := range whys {
		if why != "" {
			failing = append(failing, nodes[i].Id+": "+why)
		}
	}
	switch {
	case len(failing) == 0:
		return true, "", nil
	case len(nodes) == 1:
		return false, failing[0], nil
	default:
		return false, fmt.Sprintf("%d of %d nodes are not healthy: %s", len(failing), len(nodes), clipWords(strings.Join(failing, "; "), 300)), nil
	}
}

// nodeHealth says why a node's answer to Debug.Health is not healthy, or
// "" if it is.
func nodeHealth(ctx context.Context, rsp *dbgpb.HealthResponse, err error, limit time.Duration) string {
	if err == nil {
		if rsp.GetStatus() == "ok" {
			return ""
		}
		return fmt.Sprintf("status %q", truncate(rsp.GetStatus(), 80))
	}
	var wrongTransport *mesh.TransportError
	e := merrors.Parse(err.Error())
	d := detail(e, err)
	switch {
	case errors.As(err, &wrongTransport):
		return fmt.Sprintf("it serves over %s, which botmesh cannot call", wrongTransport.Transport)
	case ctx.Err() != nil || isTimeout(err):
		return fmt.Sprintf("no answer within %s", limit)
	case strings.Contains(d, "can't find service Debug") || strings.Contains(d, "can't find method Health"):
		return "it does not serve Debug.Health (a go-micro v4 service must register go-micro's debug handler)"
	case undelivered(err):
		return "unreachable"
	default:
		return "health failed: " + truncate(d, 120)
	}
}

// healthLooks is what one router's watch loop knows of the health targets:
// the revision of each one's seen value and when it first saw it, and
// whether it checks it now.
type healthLooks struct {
	mu sync.Mutex
	m  map[string]*healthLook
	wg sync.WaitGroup
}

type healthLook struct {
	rev   uint64
	since time.Time
	busy  bool
}

// due reports whether target, whose seen value is at rev, is to be checked
// now, and if so marks it busy.
func (h *healthLooks) due(target string, rev uint64, every time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.m[target]
	if l == nil {
		l = &healthLook{}
		h.m[target] = l
	}
	if l.busy {
		return false
	}
	now := time.Now()
	if l.since.IsZero() || l.rev != rev {
		l.rev, l.since = rev, now
		return false
	}
	if now.Sub(l.since) < every {
		return false
	}
	l.busy = true
	return true
}

func (h *healthLooks) done(target string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.m[target]; l != nil {
		l.busy = false
	}
}

// pollHealth reads target's seen value and, when it is due, checks the
// service in the background.
func (r *Router) pollHealth(ctx context.Context, looks *healthLooks, target string) {
	gctx, cancel := context.WithTimeout(ctx, scheduleTimeout)
	defer cancel()
	key := durable.WatchSeenKey + targetKey(target)
	e, err := r.watch.kv.Get(gctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Unwatched and watched again meanwhile: start from healthy.
		_, _ = r.watch.kv.Create(gctx, key, healthSeen{}.encode())
		return
	}
	if err != nil || !looks.due(target, e.Revision(), r.healthEvery()) {
		return
	}
	prev, rev := decodeHealthSeen(e.Value()), e.Revision()
	looks.wg.Go(func() {
		defer looks.done(target)
		r.checkHealth(ctx, target, prev, rev)
	})
}

// checkHealth claims the check of target (whose seen value prev is at
// rev), checks, announces what changed and records the result.
func (r *Router) checkHealth(ctx context.Context, target string, prev healthSeen, rev uint64) {
	cctx, cancel := context.WithTimeout(ctx, scheduleTimeout+r.healthTimeout())
	defer cancel()
	tk := targetKey(target)
	key := durable.WatchSeenKey + tk
	claim := prev
	claim.Checker = r.id
	claimed, err := r.watch.kv.Update(cctx, key, claim.encode(), rev)
	if err != nil {
		return // another router checks it
	}
	service, _ := healthService(target)
	ok, why, err := r.lookAtHealth(cctx, service)
	if err != nil {
		r.log.Debug("health watch: the registry cannot be read", "service", service, "err", err)
		return // the claim lapses: the next check is an interval away
	}
	next := healthSeen{}
	var change string
	var text func(*chatopsv1.Event) string
	switch {
	case !ok:
		next = healthSeen{Failures: prev.Failures + 1, Run: prev.Run, Reason: why}
		if prev.Failures == 0 {
			next.Run = claimed
		}
		change = strconv.FormatUint(next.Run, 10) + "-f"
		text = func(set *chatopsv1.Event) string {
			if healthAfter(set) != next.Failures {
				return ""
			}
			if next.Failures == 1 {
				return fmt.Sprintf("watch: %s: health failed: %s", service, why)
			}
			return fmt.Sprintf("watch: %s: health failed %d times in a row: %s", service, next.Failures, why)
		}
	case prev.Failures > 0:
		change = strconv.FormatUint(prev.Run, 10) + "-r"
		text = func(set *chatopsv1.Event) string {
			if prev.Failures < healthAfter(set) {
				return ""
			}
			return fmt.Sprintf("watch: %s: healthy again, after %s", service, failedChecks(prev.Failures))
		}
	}
	if text != nil && !r.announce(cctx, target, tk, change, text) {
		return // the claim lapses: the next check tries again
	}
	if _, err := r.watch.kv.Update(cctx, key, next.encode(), claimed); err != nil {
		r.log.Warn("health watch: the result of a check could not be recorded", "service", service, "err", err)
		return
	}
	if next.Failures != prev.Failures {
		r.log.Info("watched health checked", "service", service, "failures", next.Failures, "why", why)
	}
}

// failedChecks says n failed checks in a row.
func failedChecks(n int) string {
	if n == 1 {
		return "1 failed check"
	}
	return fmt.Sprintf("%d failed checks in a row", n)
}

// describeHealth shows a health target's seen value to a conversation
// told after n failures in a row.
func describeHealth(seen healthSeen, n int) string {
	if seen.Failures == 0 {
		return "healthy; told after " + failedChecks(n)
	}
	return fmt.Sprintf("%s: %s; told after %d", failedChecks(seen.Failures), seen.Reason, n)
}
