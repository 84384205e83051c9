// Package directory keeps the router's view of the command services: every
// service in the go-micro registry whose name starts with the namespace, its
// live nodes, and the commands it serves (from Command.Help).
//
// The view is built from a full listing at start, kept current by the
// registry's watcher (a service started later is usable as soon as its
// registration is seen), and corrected by a periodic resync (a process
// killed without deregistering disappears at the next one, once a second
// listing a moment later confirms it). The directory is also the router's
// go-micro selector, so that help, matching and RPC routing all see the
// same services and nodes.
//
// A listing is not evidence that services are gone when it may have been
// taken while NATS was down. go-micro's NATS registry answers a listing
// from whoever replies to its query within 100ms: while its connection is
// reconnecting, or before the services' own connections are back, it
// returns an empty (or short) listing and no error. So the view is kept
// while the NATS connection is down and for a settle time after it comes
// back (WithConnected), and, whether or not the directory can see the
// connection, a listing that lacks more than half of the known services
// removes nothing until it has said so for the outage grace.
package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"golang.org/x/sync/singleflight"
)

// HelpFunc asks a service for its usage (Command.Help).
type HelpFunc func(ctx context.Context, service string) (*chatopsv1.HelpResponse, error)

// Command is one command a service serves.
type Command struct {
	// Words start the command, lower-case: ["list", "services"] or ["echo"].
	Words []string
	// Usage and Description are shown by help; Usage is the words until
	// the service answers Help.
	Usage, Description string
	// Service is the registry name of the service that runs the command.
	Service string
	// Versions are the versions of the service whose Help lists the
	// command, when not every version does (a command a new version
	// added): only their nodes run it. Empty: any node.
	Versions []string
	// Unreachable says why none of the service's nodes can be called
	// (WithCallable), e.g. "go.micro.bot.shout (node …) serves over grpc,
	// which botmesh cannot call …"; empty when one can.
	Unreachable string
}

// Pattern returns the command's words joined by spaces.
func (c Command) Pattern() string { return strings.Join(c.Words, " ") }

type entry struct {
	name     string // command name: service name minus namespace and dot
	nodes    map[string]*registry.Node
	seen     map[string]time.Time // node id → last time a registration was seen
	born     map[string]time.Time // node id → first time it was seen
	down     map[string]time.Time // node id → not to be chosen until
	missing  map[string]time.Time // node id → first trusted listing that lacked it
	answered map[string]bool      // node id → a call to it was delivered
	version  map[string]string    // node id → the version it registered
	commands []Command
	// Each version serving the service is asked for Help once (a new
	// version may serve other commands); the commands are those of every
	// version, the highest version's first.
	helps    map[string]*chatopsv1.HelpResponse // version → its Help answer
	fetching map[string]bool                    // version → Help call in flight
}

// Directory is the router's view of the command services. It is safe for
// concurrent use.
type Directory struct {
	reg    registry.Registry
	prefix string // namespace + "."
	log    *slog.Logger
	resync time.Duration
	down   time.Duration
	warmup time.Duration
	now    func() time.Time

	connected func() bool     // nil: the connection's state is unknown
	changes   <-chan struct{} // nil: connected is polled
	callable  CallableFunc    // nil: every node
	settle    time.Duration   // after a reconnect, listings remove nothing
	confirm   time.Duration   // between a listing that lacks nodes and the one that confirms it
	outage    time.Duration   // how long a listing lacking most services must persist; 0: default
	lastDown  atomic.Int64    // d.now() in Unix ns when connected() was last seen false; 0: never
	kick      chan struct{}   // resync now: the connection has settled after an outage

	mu       sync.RWMutex
	services map[string]*entry      // by registry name
	gone     map[string]GoneCommand // commands no longer served, by pattern (goneMax at most)
	help     HelpFunc
	ctx      context.Context // Run's context, for Help calls started by events

	ready     chan struct{}
	readyOnce sync.Once
	helps     sync.WaitGroup // Help calls in flight
	lookups   singleflight.Group
	misses    sync.Map // registry name → time of a lookup that found nothing
}

// Option configures a Directory.
type Option func(*Directory)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(d *Directory) { d.log = l } }

// WithResync sets how often the whole view is checked against the registry
// (default 10s). Services killed without deregistering leave the view at the
// next resync.
func WithResync(every time.Duration) Option { return func(d *Directory) { d.resync = every } }

// WithDownTime sets how long a node that failed at the transport level is
// skipped by the selector (default 10s), unless it is the only node.
func WithDownTime(d time.Duration) Option { return func(dd *Directory) { dd.down = d } }

// WithWarmup sets how long after it first appears a node is not marked down
// (default 2s).
func WithWarmup(d time.Duration) Option { return func(dd *Directory) { dd.warmup = d } }

// WithConnected lets the directory see whether the process's NATS
// connection is up (pass the mesh connection's IsConnected). While it is
// down, and for the settle time after it comes back, registry listings add
// services but remove none, and calls that cannot be delivered are tried
// again until their deadline (Settling). Without it the directory cannot
// tell an outage from services leaving, and relies on the outage grace.
func WithConnected(f func() bool) Option { return func(d *Directory) { d.connected = f } }

// WithConnectionChanges gives the directory a channel that gets a value
// when the NATS connection is lost or comes back (mesh.OnConnectionChange):
// then it looks at the connection only after a change and while it
// settles, instead of every connPoll.
func WithConnectionChanges(ch <-chan struct{}) Option {
	return func(d *Directory) { d.changes = ch }
}

// WithSettle sets how long after the NATS connection comes back listings
// remove nothing (default 5s): the services' own connections come back at
// their own pace (every part reconnects every 250ms, with jitter), and
// until they do the registry does not hear from them.
func WithSettle(d time.Duration) Option { return func(dd *Directory) { dd.settle = d } }

// WithConfirm sets how long after a listing that lacks known nodes a
// second listing is taken to confirm it (default 1s; 0: none). A node is
// removed only if both lack it: a service slow to answer the registry's
// 100ms query, or reconnecting, is not dropped for one missed answer.
func WithConfirm(d time.Duration) Option { return func(dd *Directory) { dd.confirm = d } }

// WithOutageGrace sets how long listings that lack more than half of the
// known services (an empty listing, say) must keep lacking them before they
// are removed: such a listing is more likely the registry's connection
// failing than most services dying at once. The default is 30s, or the
// settle time with WithConnected (the connection is then seen).
func WithOutageGrace(d time.Duration) Option { return func(dd *Directory) { dd.outage = d } }

// CallableFunc reports whether the router can call node of service: nil,
// or an error that says why not (a transport it does not speak).
type CallableFunc func(service string, node *registry.Node) error

// WithCallable lets the directory tell the nodes the router can call from
// those it cannot (pass the mesh's CanCall): the selector picks callable
// nodes, help names a service none of whose nodes can be called, with the
// reason, and a node that cannot be called is logged when it appears.
func WithCallable(f CallableFunc) Option { return func(d *Directory) { d.callable = f } }

// New returns a directory of the services under namespace in reg. It is
// empty until Run starts.
func New(reg registry.Registry, namespace string, opts ...Option) *Directory {
	d := &Directory{
		reg:      reg,
		prefix:   namespace + ".",
		log:      slog.New(slog.DiscardHandler),
		resync:   10 * time.Second,
		down:     10 * time.Second,
		warmup:   2 * time.Second,
		now:      time.Now,
		settle:   5 * time.Second,
		confirm:  time.Second,
		kick:     make(chan struct{}, 1),
		services: map[string]*entry{},
		ready:    make(chan struct{}),
		ctx:      context.Background(),
	}
	for _, o := range opts {
		o(d)
	}
	if d.outage <= 0 {
		d.outage = 30 * time.Second
		if d.connected != nil {
			d.outage = d.settle
		}
	}
	return d
}

// Ready is closed once the first full listing of the registry is done.
func (d *Directory) Ready() <-chan struct{} { return d.ready }

// Run lists the registry, then follows its watcher and resyncs periodically
// until ctx is done. help is called once per new service, in the background.
func (d *Directory) Run(ctx context.Context, help HelpFunc) error {
	d.mu.Lock()
	d.help, d.ctx = help, ctx
	d.mu.Unlock()

	// Watch before the first listing, so that nothing registered meanwhile
	// is missed.
	w, werr := d.reg.Watch()
	if werr != nil {
		d.log.Warn("registry watch failed; retrying", "err", werr)
		w = nil
	}
	if err := d.Sync(ctx); err != nil {
		d.log.Warn("first registry listing failed; retrying", "err", err)
	}
	// Let the first Help answers arrive, so that help is complete from the
	// start (services that do not answer keep their name meanwhile).
	helped := make(chan struct{})
	go func() {
		d.helps.Wait()
		close(helped)
	}()
	select {
	case <-helped:
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
	}
	d.readyOnce.Do(func() { close(d.ready) })

	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		d.watch(ctx, w)
	}()
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		d.pollConnection(ctx)
	}()
	t := time.NewTicker(d.resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-watchDone
			<-pollDone
			return nil
		case <-t.C:
		case <-d.kick:
		}
		if err := d.Sync(ctx); err != nil {
			d.log.Warn("registry resync failed", "err", err)
		}
	}
}

// connPoll is how often the NATS connection's state is looked at (only
// while it settles after a change, with WithConnectionChanges): often
// enough to see any outage that matters (a reconnect takes at least the
// 250ms reconnect wait), and cheap (a read under a lock). It wakes an idle
// router: every 100ms it was a ninth of an idle all-in-one's wake-ups.
const connPoll = 200 * time.Millisecond

// pollConnection watches the NATS connection (WithConnected) until ctx is
// done, so that outages are seen even when no listing or call happens
// during them, and asks for a resync once the connection has settled
// after one.
func (d *Directory) pollConnection(ctx context.Context) {
	if d.connected == nil {
		return
	}
	t := time.NewTicker(connPoll)
	defer t.Stop()
	wasSettled := true
	for {
		if d.changes != nil && wasSettled {
			// Settled: nothing to look at until the connection changes.
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-d.changes:
				d.lastDown.Store(d.now().UnixNano()) // lost, or just back
			}
			t.Reset(connPoll)
		} else {
			select {
			case <-ctx.Done():
				return
			case <-d.changes: // nil without WithConnectionChanges
				d.lastDown.Store(d.now().UnixNano())
			case <-t.C:
			}
		}
		settled := d.settled()
		switch {
		case wasSettled && !settled:
			d.log.Info("NATS connection lost or back: keeping the view of the command services until it settles", "settle", d.settle)
		case !wasSettled && settled:
			d.log.Info("NATS connection settled: checking the view of the command services")
			select {
			case d.kick <- struct{}{}:
			default:
			}
		}
		wasSettled = settled
	}
}

// settled reports whether registry listings can be trusted to show every
// live service: the NATS connection is up and has been for the settle time
// (always true without WithConnected). It notes when it finds the
// connection down.
func (d *Directory) settled() bool {
	if d.connected == nil {
		return true
	}
	now := d.now()
	if !d.connected() {
		d.lastDown.Store(now.UnixNano())
		return false
	}
	last := d.lastDown.Load()
	return last == 0 || now.Sub(time.Unix(0, last)) >= d.settle
}

// Settling reports whether the NATS connection is down or came back less
// than the settle time ago (false without WithConnected): nodes that
// cannot be reached now are probably reconnecting.
func (d *Directory) Settling() bool { return d.connected != nil && !d.settled() }

// watch follows w (or a new watcher, if w is nil or ends) until ctx is
// done.
func (d *Directory) watch(ctx context.Context, w registry.Watcher) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if w == nil {
			w, err = d.reg.Watch()
		}
		if err != nil {
			d.log.Warn("registry watch failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		began := time.Now()
		stop := context.AfterFunc(ctx, w.Stop)
		for {
			res, err := w.Next()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("registry watcher ended; restarting", "err", err)
				}
				break
			}
			if res != nil && res.Service != nil {
				d.apply(res.Action, res.Service)
			}
		}
		stop()
		w.Stop()
		w = nil
		if time.Since(began) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// apply merges one watcher event.
func (d *Directory) apply(action string, svc *registry.Service) {
	if !d.inNamespace(svc.Name) {
		return
	}
	d.log.Debug("registry event", "action", action, "service", svc.Name, "nodes", len(svc.Nodes))
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.services[svc.Name]
	switch action {
	case "delete":
		if e == nil {
			return
		}
		for _, n := range svc.Nodes {
			e.forget(n.Id)
		}
		d.setCommandsLocked(e, e.dropGoneVersions(svc.Name))
		if len(e.nodes) == 0 {
			d.removeLocked(svc.Name, e)
		}
	default: // create, update
		if len(svc.Nodes) == 0 {
			return
		}
		if e == nil {
			e = d.addLocked(svc.Name)
		}
		for _, n := range svc.Nodes {
			if _, known := e.nodes[n.Id]; !known {
				e.born[n.Id] = now
				d.noteNode(svc.Name, n)
			}
			e.version[n.Id] = svc.Version
			e.nodes[n.Id] = n
			e.seen[n.Id] = now
			delete(e.down, n.Id)
			delete(e.missing, n.Id)
		}
		d.fetchHelpLocked(svc.Name, e)
	}
}

func (d *Directory) addLocked(service string) *entry {
	name := strings.TrimPrefix(service, d.prefix)
	e := &entry{
		name:     name,
		nodes:    map[string]*registry.Node{},
		seen:     map[string]time.Time{},
		born:     map[string]time.Time{},
		down:     map[string]time.Time{},
		missing:  map[string]time.Time{},
		answered: map[string]bool{},
		version:  map[string]string{},
		helps:    map[string]*chatopsv1.HelpResponse{},
		fetching: map[string]bool{},
	}
	d.setCommandsLocked(e, defaultCommands(service, name, nil))
	d.services[service] = e
	d.misses.Delete(service)
	d.log.Info("command service found", "service", service, "command", name)
	return e
}

type versionKey struct{}

// HelpVersion returns the version of the service a HelpFunc's call is
// for, and whether there is one: pass it to the selector with
// SelectVersion so that the version asked answers.
func HelpVersion(ctx context.Context) (string, bool) {
	v, ok := ctx.Value(versionKey{}).([]string)
	if !ok || len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// fetchHelpLocked starts a Help call for each version of e that has not
// answered and is not being asked.
func (d *Directory) fetchHelpLocked(service string, e *entry) {
	if d.help == nil {
		return
	}
	for _, version := range e.versions() {
		if e.helps[version] != nil || e.fetching[version] {
			continue
		}
		e.fetching[version] = true
		help, ctx := d.help, d.ctx
		d.helps.Add(1)
		go func() {
			defer d.helps.Done()
			hctx, cancel := context.WithTimeout(context.WithValue(ctx, versionKey{}, []string{version}), 5*time.Second)
			rsp, err := help(hctx, service)
			cancel()
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(e.fetching, version)
			if d.services[service] != e || !slices.Contains(e.versions(), version) {
				return // gone meanwhile
			}
			if err != nil {
				// Keep the Micro Bot rule (name = command); try again at
				// the next resync.
				d.log.Warn("command service did not answer Help", "service", service, "version", version, "err", err)
				return
			}
			// Until the first Help, e has the name's command (the Micro
			// Bot's rule): that one is not gone when Help replaces it.
			guessed := len(e.helps) == 0
			e.helps[version] = rsp
			if guessed {
				e.commands = nil
			}
			d.setCommandsLocked(e, e.commandsOf(service))
			d.log.Debug("command service help", "service", service, "version", version, "commands", len(e.commands))
		}()
	}
}

// versions returns the versions e's nodes registered, highest first.
func (e *entry) versions() []string {
	var out []string
	for _, v := range e.version {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// dropGoneVersions forgets the Help of versions no node serves any more,
// and returns e's commands as they are then.
func (e *entry) dropGoneVersions(service string) []Command {
	live := e.versions()
	changed := false
	for v := range e.helps {
		if !slices.Contains(live, v) {
			delete(e.helps, v)
			changed = true
		}
	}
	if changed {
		return e.commandsOf(service)
	}
	return e.commands
}

// goneMax bounds the commands remembered as gone; the longest gone go
// first.
const goneMax = 1000

// GoneCommand is a command no longer served, and when it last was.
type GoneCommand struct {
	Command
	Last time.Time
}

// setCommandsLocked gives e the commands cmds, and remembers those it
// had and has no more as gone now; d.mu is held.
func (d *Directory) setCommandsLocked(e *entry, cmds []Command) {
	for _, old := range e.commands {
		if !slices.ContainsFunc(cmds, func(c Command) bool { return c.Pattern() == old.Pattern() }) {
			d.noteGoneLocked(old)
		}
	}
	for _, c := range cmds {
		delete(d.gone, c.Pattern())
	}
	e.commands = cmds
}

// removeLocked removes the service name, whose last node has left; d.mu
// is held.
func (d *Directory) removeLocked(name string, e *entry) {
	for _, c := range e.commands {
		d.noteGoneLocked(c)
	}
	delete(d.services, name)
	d.log.Info("command service gone", "service", name)
}

func (d *Directory) noteGoneLocked(c Command) {
	if d.gone == nil {
		d.gone = map[string]GoneCommand{}
	}
	d.gone[c.Pattern()] = GoneCommand{Command: c, Last: d.now()}
	for len(d.gone) > goneMax {
		oldest := ""
		for p, g := range d.gone {
			if oldest == "" || g.Last.Before(d.gone[oldest].Last) {
				oldest = p
			}
		}
		delete(d.gone, oldest)
	}
}

// Gone returns the command that words start (the longest) among those
// this directory knew and no longer has: words that match no command now
// may name one whose service is gone. The memory is this directory's: one
// started after a service left does not know it was there.
func (d *Directory) Gone(words []string) (GoneCommand, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var best GoneCommand
	found := false
	for _, g := range d.gone {
		if prefixFold(g.Words, words) && (!found || len(g.Words) > len(best.Words)) {
			best, found = g, true
		}
	}
	return best, found
}

// commandsOf returns the commands of every version that answered Help,
// as the highest version that lists each describes it, with the versions
// that serve it when not all do.
func (e *entry) commandsOf(service string) []Command {
	var out []Command
	at := map[string]int{} // pattern → index in out
	all := e.versions()
	for _, v := range all {
		rsp := e.helps[v]
		if rsp == nil {
			continue
		}
		for _, c := range defaultCommands(service, e.name, rsp) {
			i, ok := at[c.Pattern()]
			if !ok {
				i = len(out)
				at[c.Pattern()] = i
				out = append(out, c)
			}
			out[i].Versions = append(out[i].Versions, v)
		}
	}
	if len(out) == 0 {
		return defaultCommands(service, e.name, nil)
	}
	for i := range out {
		if len(out[i].Versions) == len(all) {
			out[i].Versions = nil // every version serves it
		}
	}
	return out
}

// noteNode logs a new node the router cannot call.
func (d *Directory) noteNode(service string, n *registry.Node) {
	if d.callable == nil {
		return
	}
	if err := d.callable(service, n); err != nil {
		d.log.Warn("command service node cannot be called", "service", service, "node", n.Id, "transport", n.Metadata["transport"], "reason", err.Error())
	}
}

// uncallableLocked returns why none of e's nodes can be called, or "" if
// one can.
func (d *Directory) uncallableLocked(service string, e *entry) string {
	if d.callable == nil {
		return ""
	}
	var reasons []string
	for _, n := range e.nodes {
		err := d.callable(service, n)
		if err == nil {
			return ""
		}
		reasons = append(reasons, err.Error())
	}
	sort.Strings(reasons)
	return strings.Join(reasons, "; ")
}

func (e *entry) forget(id string) {
	delete(e.version, id)
	delete(e.nodes, id)
	delete(e.seen, id)
	delete(e.born, id)
	delete(e.down, id)
	delete(e.missing, id)
	delete(e.answered, id)
}

// defaultCommands turns a Help answer (nil before it comes) into commands.
func defaultCommands(service, name string, rsp *chatopsv1.HelpResponse) []Command {
	var out []Command
	if rsp != nil {
		for _, c := range rsp.GetCommands() {
			words := strings.Fields(strings.ToLower(c.GetPattern()))
			if len(words) == 0 {
				continue
			}
			usage := c.GetUsage()
			if usage == "" {
				usage = strings.Join(words, " ")
			}
			out = append(out, Command{Words: words, Usage: usage, Description: c.GetDescription(), Service: service})
		}
	}
	if len(out) > 0 {
		return out
	}
	c := Command{Words: []string{strings.ToLower(name)}, Usage: name, Service: service}
	if rsp != nil {
		if rsp.GetUsage() != "" {
			c.Usage = rsp.GetUsage()
		}
		c.Description = rsp.GetDescription()
	}
	return []Command{c}
}

// Sync checks the view against a full listing of the registry: it adds
// what the listing has, and removes nodes it lacks that were last seen
// before it began, if the listing can be trusted to be complete: it was
// taken while the NATS connection was settled (WithConnected), a second
// listing a moment later (WithConfirm) lacks them too, and, if it lacks
// more than half of the services, it has lacked them for the outage grace.
// A listing that fails removes nothing.
func (d *Directory) Sync(ctx context.Context) error {
	started := d.now()
	trusted := d.settled()
	l, err := d.list(ctx)
	if err != nil {
		return err
	}
	d.merge(l, started)
	if !trusted || !d.settled() {
		d.log.Debug("registry listed while NATS is down or reconnecting: removing nothing")
		return l.err()
	}
	if d.confirm > 0 && d.lacksNodes(l, started) {
		select {
		case <-ctx.Done():
			return l.err()
		case <-time.After(d.confirm):
		}
		again := d.now()
		l2, err := d.list(ctx)
		if err != nil {
			return err
		}
		d.merge(l2, again)
		if !d.settled() {
			return l2.err()
		}
		// A node in either listing is now seen since started: what
		// lacks is what both lack.
		for name := range l.failed {
			l2.failed[name] = true
		}
		l = l2
	}
	d.prune(l, started)
	return l.err()
}

// listing is the result of listing the registry and looking up each
// command service in it.
type listing struct {
	nodes    map[string][]*registry.Node // listed and looked up (maybe with no nodes)
	versions map[string]string           // service name + "/" + node id → version
	failed   map[string]bool             // listed, but the lookup failed
	errs     []error
}

func (l listing) err() error { return errors.Join(l.errs...) }

func (d *Directory) list(ctx context.Context) (listing, error) {
	list, err := d.reg.ListServices(registry.ListContext(ctx))
	if err != nil {
		return listing{}, fmt.Errorf("directory: list services: %w", err)
	}
	names := map[string]bool{}
	for _, s := range list {
		if d.inNamespace(s.Name) {
			names[s.Name] = true
		}
	}
	l := listing{nodes: make(map[string][]*registry.Node, len(names)), versions: map[string]string{}, failed: map[string]bool{}}
	var (
		wg  sync.WaitGroup
		fmu sync.Mutex
	)
	for name := range names {
		wg.Go(func() {
			svcs, err := d.reg.GetService(name, registry.GetContext(ctx))
			fmu.Lock()
			defer fmu.Unlock()
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				l.errs = append(l.errs, fmt.Errorf("get %s: %w", name, err))
				l.failed[name] = true // unknown: keep what we know
				return
			}
			var nodes []*registry.Node
			for _, s := range svcs {
				nodes = append(nodes, s.Nodes...)
				for _, n := range s.Nodes {
					l.versions[name+"/"+n.Id] = s.Version
				}
			}
			l.nodes[name] = nodes
		})
	}
	wg.Wait()
	return l, nil
}

// merge adds the services and nodes of l, seen at started.
func (d *Directory) merge(l listing, started time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, nodes := range l.nodes {
		e := d.services[name]
		if e == nil {
			if len(nodes) == 0 {
				continue
			}
			e = d.addLocked(name)
		}
		for _, n := range nodes {
			if _, known := e.nodes[n.Id]; !known {
				e.born[n.Id] = started
				d.noteNode(name, n)
			}
			e.nodes[n.Id] = n
			e.version[n.Id] = l.versions[name+"/"+n.Id]
			if e.seen[n.Id].Before(started) {
				e.seen[n.Id] = started
			}
			delete(e.missing, n.Id)
		}
		d.fetchHelpLocked(name, e)
	}
}

// absentLocked returns the nodes of each service that l lacks and that were
// last seen before since.
func (d *Directory) absentLocked(l listing, since time.Time) map[string][]string {
	out := map[string][]string{}
	for name, e := range d.services {
		if l.failed[name] {
			continue
		}
		live := l.nodes[name]
		for id := range e.nodes {
			if !e.seen[id].Before(since) || slices.ContainsFunc(live, func(n *registry.Node) bool { return n.Id == id }) {
				continue
			}
			out[name] = append(out[name], id)
		}
	}
	return out
}

func (d *Directory) lacksNodes(l listing, since time.Time) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.absentLocked(l, since)) > 0
}

// prune removes the nodes l lacks that were last seen before since, and
// the services left with none; unless l lacks more than half of the
// services, which removes them only once listings have lacked them for the
// outage grace.
func (d *Directory) prune(l listing, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	absent := d.absentLocked(l, since)
	vanished := 0
	for name, ids := range absent {
		if len(ids) == len(d.services[name].nodes) {
			vanished++
		}
	}
	known := len(d.services)
	var grace time.Duration
	if vanished*2 > known {
		grace = d.outage
	}
	kept := 0
	for name, ids := range absent {
		e := d.services[name]
		for _, id := range ids {
			if e.missing[id].IsZero() {
				e.missing[id] = since
			}
			if since.Sub(e.missing[id]) < grace {
				kept++
				continue
			}
			e.forget(id)
		}
		d.setCommandsLocked(e, e.dropGoneVersions(name))
		if len(e.nodes) == 0 {
			d.removeLocked(name, e)
		}
	}
	if kept > 0 {
		d.log.Warn("the registry lists too few command services to be believed: keeping them until it has for the outage grace",
			"listed", known-vanished, "known", known, "grace", d.outage)
	}
}

func (d *Directory) inNamespace(service string) bool {
	return len(service) > len(d.prefix) && strings.HasPrefix(service, d.prefix)
}

// Match returns the command whose words are the longest prefix of words
// (compared case-insensitively). Ties go to the service whose name sorts
// first, so every router replica picks the same one.
func (d *Directory) Match(words []string) (Command, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var best Command
	found := false
	for _, e := range d.services {
		for _, c := range e.commands {
			if !prefixFold(c.Words, words) {
				continue
			}
			if !found || len(c.Words) > len(best.Words) || len(c.Words) == len(best.Words) && c.Service < best.Service {
				best, found = c, true
			}
		}
	}
	return best, found
}

// prefixFold reports whether words begin with the (lower-case) pattern,
// ignoring case: only the pattern's few words are compared, so a long
// message costs no more than a short one.
func prefixFold(pattern, words []string) bool {
	if len(pattern) > len(words) {
		return false
	}
	for i, p := range pattern {
		if !strings.EqualFold(p, words[i]) {
			return false
		}
	}
	return true
}

// Lookup asks the registry directly for the service named by the command
// word, for a message that matched nothing: it makes a service usable even
// before its registration event arrives. Lookups that find nothing are not
// repeated for a second.
func (d *Directory) Lookup(ctx context.Context, word string) (Command, bool) {
	service := d.prefix + strings.ToLower(word)
	if !d.inNamespace(service) {
		return Command{}, false
	}
	if t, ok := d.misses.Load(service); ok && d.now().Sub(t.(time.Time)) < time.Second {
		return Command{}, false
	}
	v, _, _ := d.lookups.Do(service, func() (any, error) {
		svcs, err := d.reg.GetService(service, registry.GetContext(ctx))
		found := false
		for _, s := range svcs {
			found = found || len(s.Nodes) > 0
		}
		if err != nil || !found {
			d.misses.Store(service, d.now())
			return false, nil
		}
		for _, s := range svcs {
			d.apply("create", &registry.Service{Name: service, Version: s.Version, Nodes: s.Nodes})
		}
		return true, nil
	})
	if !v.(bool) {
		return Command{}, false
	}
	return d.Match([]string{word})
}

// Services returns how many command services the directory knows.
func (d *Directory) Services() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.services)
}

// Commands returns every command, sorted by pattern then service.
func (d *Directory) Commands() []Command {
	d.mu.RLock()
	var out []Command
	for name, e := range d.services {
		why := d.uncallableLocked(name, e)
		for _, c := range e.commands {
			c.Unreachable = why
			out = append(out, c)
		}
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if pi, pj := out[i].Pattern(), out[j].Pattern(); pi != pj {
			return pi < pj
		}
		return out[i].Service < out[j].Service
	})
	return out
}

// nodes returns the nodes of service (of one of versions, unless there
// are none) to choose from, sorted by id: of those the router can call (all of them if it can
// call none, so that the call fails saying why), those not marked down, or
// all of them if every node is marked down.
func (d *Directory) nodes(service string, versions ...string) []*registry.Node {
	now := d.now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	e := d.services[service]
	if e == nil {
		return nil
	}
	all := make([]*registry.Node, 0, len(e.nodes))
	up := make([]*registry.Node, 0, len(e.nodes))
	for id, n := range e.nodes {
		if len(versions) > 0 && !slices.Contains(versions, e.version[id]) {
			continue
		}
		if d.callable != nil && d.callable(service, n) != nil {
			continue
		}
		all = append(all, n)
		if now.After(e.down[id]) {
			up = append(up, n)
		}
	}
	if len(all) == 0 {
		for id, n := range e.nodes {
			if len(versions) == 0 || slices.Contains(versions, e.version[id]) {
				all = append(all, n)
			}
		}
	}
	if len(up) == 0 {
		up = all
	}
	sort.Slice(up, func(i, j int) bool { return up[i].Id < up[j].Id })
	return up
}

// markDown keeps node out of selection for the down time, unless it
// registered less than the warm-up ago: go-micro registers a server before
// its NATS transport subscription is live, so a new node can answer "no
// responders" for a moment.
func (d *Directory) markDown(service, node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.services[service]; e != nil {
		if _, ok := e.nodes[node]; ok && d.now().Sub(e.born[node]) >= d.warmup {
			wasDown := d.now().Before(e.down[node])
			e.down[node] = d.now().Add(d.down)
			if !wasDown {
				// Once per node going down, not per failed call.
				d.log.Warn("node unreachable; skipping it", "service", service, "node", node, "for", d.down)
			}
		}
	}
}

// markUp notes that a call to node was delivered and clears its down mark.
func (d *Directory) markUp(service, node string) {
	d.mu.RLock()
	e := d.services[service]
	done := e == nil || e.answered[node] && e.down[node].IsZero()
	d.mu.RUnlock()
	if done {
		return // the common case: no write lock per call
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.services[service]; e != nil {
		if _, ok := e.nodes[node]; ok {
			e.answered[node] = true
			delete(e.down, node)
		}
	}
}

// rotation returns a selector.Next for one call: it starts at a random node
// and moves to the next one on each retry, so a retry goes elsewhere when
// there is elsewhere to go.
func (d *Directory) rotation(service string, versions []string) func() (*registry.Node, error) {
	offset := rand.IntN(1 << 30)
	return func() (*registry.Node, error) {
		nodes := d.nodes(service, versions...)
		if len(nodes) == 0 {
			return nil, selector.ErrNoneAvailable
		}
		n := nodes[offset%len(nodes)]
		offset++
		return n, nil
	}
}
