package deploy

// The NATS identities of deploy/nats: a real nats-server started in this
// process from the shipped configuration files (passwords from the
// environment, as in compose and Kubernetes; ports and the JetStream store
// rewritten for the test). Each role connects with its own credentials,
// does what its part of botmesh does, and is refused what it must not do:
// NATS answers with a permissions violation naming the subject, and nothing
// is delivered or stored.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// natsRole is one NATS identity of deploy/nats/permissions.conf.
type natsRole struct {
	user     string // NATS user name
	password string // environment variable holding its password
	platform string // a gateway's platform; "" for the others
}

var natsRoles = []natsRole{
	{"router", "BOTMESH_NATS_PASSWORD_ROUTER", ""},
	{"gateway-web", "BOTMESH_NATS_PASSWORD_GATEWAY_WEB", "web"},
	{"gateway-slack", "BOTMESH_NATS_PASSWORD_GATEWAY_SLACK", "slack"},
	{"gateway-xmpp", "BOTMESH_NATS_PASSWORD_GATEWAY_XMPP", "xmpp"},
	{"gateway-irc", "BOTMESH_NATS_PASSWORD_GATEWAY_IRC", "irc"},
	{"gateway-shell", "BOTMESH_NATS_PASSWORD_GATEWAY_SHELL", "shell"},
	{"gateway-mail", "BOTMESH_NATS_PASSWORD_GATEWAY_MAIL", "mail"},
	{"botctl", "BOTMESH_NATS_PASSWORD_BOTCTL", "cli"},
	{"service", "BOTMESH_NATS_PASSWORD_SERVICE", ""},
	{"service-note", "BOTMESH_NATS_PASSWORD_SERVICE_NOTE", ""},
	{"processor-relay", "BOTMESH_NATS_PASSWORD_PROCESSOR_RELAY", ""},
}

// routePassword is the variable of the cluster routes' password; the
// route URLs, credentials included, are BOTMESH_NATS_ROUTE_1..3.
const routePassword = "BOTMESH_NATS_PASSWORD_ROUTE"

// Names the botmesh code uses (sdk/durable, router/audit, router/confirm,
// gateway/dedup.go), repeated here: this module does not import botmesh's.
const (
	inStream       = "BOTMESH_IN"
	outStream      = "BOTMESH_OUT_" // and the platform
	keepSubject    = "bot.v1.keep."
	keepHeader     = "Botmesh-Keep"
	sharedOutbound = "outbound"
	aliveSubject   = "bot.v1.alive."
	auditStream    = "BOTMESH_AUDIT"
	schedStream    = "BOTMESH_SCHEDULES"
	routersGroup   = "routers"
	dialogsKV      = "botmesh_dialogs"
	claimsKV       = "botmesh_claims"
	seenKV         = "botmesh_gateway_seen"
	routerSvc      = "botmesh-router"
	registryQ      = "micro.registry.nats.query"
	registryW      = "micro.registry.nats.watch"
)

// setNATSEnv gives every role a random password in the environment, as
// .env or the Kubernetes Secret does, and returns them by user.
func setNATSEnv(t *testing.T, serverName string) map[string]string {
	t.Helper()
	t.Setenv("NATS_SERVER_NAME", serverName)
	pw := map[string]string{}
	for _, r := range natsRoles {
		p := secret()
		t.Setenv(r.password, p)
		pw[r.user] = p
	}
	return pw
}

// secret returns a password like the ones `make .env` writes.
func secret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "s" + hex.EncodeToString(b)
}

// serverLog keeps what the server logs as errors (violations among them).
type serverLog struct {
	mu     sync.Mutex
	errors []string
}

func (l *serverLog) Noticef(string, ...any) {}
func (l *serverLog) Warnf(string, ...any)   {}
func (l *serverLog) Debugf(string, ...any)  {}
func (l *serverLog) Tracef(string, ...any)  {}
func (l *serverLog) Fatalf(f string, v ...any) {
	l.Errorf(f, v...)
}
func (l *serverLog) Errorf(f string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, fmt.Sprintf(f, v...))
}

// matching returns the logged errors that contain s.
func (l *serverLog) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.errors {
		if strings.Contains(e, s) {
			out = append(out, e)
		}
	}
	return out
}

// startNATS starts a server from the configuration file conf (with the
// environment as it is), on a random client port, without monitoring, with
// its JetStream store in a temporary directory. edit changes the options
// further (cluster ports).
func startNATS(t *testing.T, conf string, edit func(*server.Options)) (*server.Server, *serverLog) {
	t.Helper()
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("%s: %v", conf, err)
	}
	opts.Host = "127.0.0.1"
	opts.Port = -1
	opts.HTTPPort = 0
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	if edit != nil {
		edit(opts)
	}
	return runServer(t, opts)
}

func runServer(t *testing.T, opts *server.Options) (*server.Server, *serverLog) {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	log := &serverLog{}
	s.SetLoggerV2(log, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("NATS server %s not ready within 10s", opts.ServerName)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s, log
}

// client is one role's connection. Asynchronous errors (the permissions
// violations NATS reports) arrive on errs.
type client struct {
	t    *testing.T
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func dial(t *testing.T, s *server.Server, user, password string) *client {
	t.Helper()
	c := &client{t: t, user: user, errs: make(chan error, 256)}
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password), nats.Name("test-"+user),
		nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return c
}

// flush makes sure the server has handled everything c sent, and that c
// holds everything the server delivered before.
func (c *client) flush() {
	c.t.Helper()
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil {
		c.t.Fatalf("%s: flush: %v", c.user, err)
	}
}

// refused waits (at most 5 s) for NATS's permissions violation about what,
// e.g. `Publish to "bot.v1.in.slack"`, on c. The connection stays up.
func (c *client) refused(what string) {
	c.t.Helper()
	want := "Permissions Violation for " + what
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	var others []string
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
				if !c.nc.IsConnected() {
					c.t.Fatalf("%s: disconnected after %q", c.user, want)
				}
				return
			}
			others = append(others, err.Error())
		case <-deadline.C:
			c.t.Fatalf("%s: no %q within 5s (other errors: %q)", c.user, want, others)
		}
	}
}

// clean asserts that NATS refused nothing c did.
func (c *client) clean() {
	c.t.Helper()
	c.flush()
	for {
		select {
		case err := <-c.errs:
			c.t.Errorf("%s: unexpected asynchronous error: %v", c.user, err)
		default:
			return
		}
	}
}

// mustNotPublish publishes on subject and asserts that NATS refuses it.
func (c *client) mustNotPublish(subject string) {
	c.t.Helper()
	if err := c.nc.Publish(subject, []byte("forbidden")); err != nil {
		c.t.Fatalf("%s: publish %s: %v", c.user, subject, err)
	}
	c.flush()
	c.refused(fmt.Sprintf("Publish to %q", subject))
}

// mustNotSubscribe subscribes to subject and asserts that NATS refuses it;
// the returned channel must stay empty.
func (c *client) mustNotSubscribe(subject string) chan *nats.Msg {
	c.t.Helper()
	ch := make(chan *nats.Msg, 16)
	if _, err := c.nc.ChanSubscribe(subject, ch); err != nil {
		c.t.Fatalf("%s: subscribe %s: %v", c.user, subject, err)
	}
	c.flush()
	c.refused(fmt.Sprintf("Subscription to %q", subject))
	return ch
}

// receive waits (at most 10 s) for a message on ch.
func receive(t *testing.T, ch chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		return nil
	}
}

// empty asserts that nothing arrived on ch (after the flushes that would
// have delivered it).
func empty(t *testing.T, ch chan *nats.Msg, what string) {
	t.Helper()
	select {
	case m := <-ch:
		t.Errorf("%s: delivered %s %q", what, m.Subject, m.Data)
	default:
	}
}

// mesh is a server from nats.conf with the router's side set up as the
// router sets it up: streams, buckets, the consumer, the service API.
type mesh struct {
	s      *server.Server
	log    *serverLog
	pw     map[string]string
	router *client
	// taken gets a value for each message the test router took from
	// BOTMESH_IN.
	taken chan *nats.Msg
	// coreIn gets what the router's core subscription to bot.v1.in.> gets.
	coreIn chan *nats.Msg
	// svc is the router's NATS service (botmesh-router).
	svc micro.Service
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{pw: setNATSEnv(t, "botmesh-test")}
	m.s, m.log = startNATS(t, "nats/nats.conf", nil)
	if !m.s.JetStreamEnabled() {
		t.Fatal("nats.conf does not enable JetStream")
	}
	m.router = dial(t, m.s, "router", m.pw["router"])
	m.routerSetup(t)
	return m
}

// routerSetup does, as the router, what router.Run does at start.
func (m *mesh) routerSetup(t *testing.T) {
	t.Helper()
	r := m.router
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streams := []jetstream.StreamConfig{
		{Name: inStream, Subjects: []string{"bot.v1.in.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, MaxAge: 10 * time.Minute},
		{Name: auditStream, Subjects: []string{"bot.v1.audit.>"}, Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour},
		{Name: schedStream, Subjects: []string{"bot.v1.sched.>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
			AllowDirect: true, AllowMsgTTL: true, AllowMsgSchedules: true},
	}
	// One reply stream per platform.
	for _, role := range natsRoles {
		if role.platform != "" {
			streams = append(streams, jetstream.StreamConfig{Name: outStream + role.platform, Subjects: []string{"bot.v1.out." + role.platform + ".*.*", "bot.v1.out." + role.platform + ".*.*.o"},
				Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, MaxAge: time.Hour, AllowDirect: true, MaxMsgsPerSubject: 1})
		}
	}
	// The single reply stream of earlier versions, which routers remove.
	if err := r.js.DeleteStream(ctx, "BOTMESH_OUT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("router: remove the old reply stream: %v, want %v", err, jetstream.ErrStreamNotFound)
	}
	// Twice: the first creates (STREAM.UPDATE answers "not found", then
	// STREAM.CREATE), the second updates, as every router after the first.
	for range 2 {
		for _, sc := range streams {
			if _, err := r.js.CreateOrUpdateStream(ctx, sc); err != nil {
				t.Fatalf("router: stream %s: %v", sc.Name, err)
			}
		}
		for _, b := range []string{dialogsKV, claimsKV, seenKV} {
			if _, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b, TTL: 10 * time.Minute, History: 1, Storage: jetstream.FileStorage}); err != nil {
				t.Fatalf("router: bucket %s: %v", b, err)
			}
		}
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, inStream, jetstream.ConsumerConfig{
		Durable: routersGroup, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		MaxDeliver: 5, MaxAckPending: 1000, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatalf("router: consumer %s: %v", routersGroup, err)
	}
	if _, err := cons.Info(ctx); err != nil {
		t.Fatalf("router: consumer info: %v", err)
	}
	// The routers' consumer of what schedules fire (its filter is part
	// of the create subject).
	sched, err := r.js.CreateOrUpdateConsumer(ctx, schedStream, jetstream.ConsumerConfig{
		Durable: routersGroup, FilterSubject: "bot.v1.sched.fire.>", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 10 * time.Second, MaxDeliver: 10, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatalf("router: consumer %s of %s: %v", routersGroup, schedStream, err)
	}
	if _, err := sched.Info(ctx); err != nil {
		t.Fatalf("router: schedules consumer info: %v", err)
	}
	// The test router answers a message from the stream on the reply
	// subject its Botmesh-Test-Reply header names (the real one reads it
	// from the event): a progress note on core NATS, the final reply into
	// the reply stream, then the acknowledgement.
	m.taken = make(chan *nats.Msg, 64)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		reply := msg.Headers().Get("Botmesh-Test-Reply")
		if reply != "" {
			_ = r.nc.Publish(reply+".p", []byte("working"))
			pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := r.js.PublishMsg(pctx, &nats.Msg{Subject: reply, Header: nats.Header{jetstream.MsgIDHeader: {reply}}, Data: append([]byte("re: "), msg.Data()...)})
			cancel()
			if err != nil {
				r.errs <- fmt.Errorf("store reply: %w", err)
			}
		}
		if err := msg.Ack(); err != nil {
			r.errs <- fmt.Errorf("ack: %w", err)
		}
		select {
		case m.taken <- nil:
		default:
		}
	}, jetstream.PullMaxMessages(16), jetstream.PullExpiry(2*time.Second))
	if err != nil {
		t.Fatalf("router: consume: %v", err)
	}
	t.Cleanup(cc.Stop)
	// Core delivery: the queue subscription, answering on the message's
	// reply subject.
	m.coreIn = make(chan *nats.Msg, 64)
	if _, err := r.nc.QueueSubscribe("bot.v1.in.>", "router", func(msg *nats.Msg) {
		// (A JetStream publish's reply subject is the acknowledgement's
		// inbox: not a reply subject.)
		if strings.HasPrefix(msg.Reply, "bot.v1.out.") {
			_ = r.nc.Publish(msg.Reply, append([]byte("core: "), msg.Data...))
		}
		select {
		case m.coreIn <- msg:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The routers answer gateways' pings, and make a gateway's reply
	// consumer in its platform's reply stream when it asks.
	svc, err := micro.AddService(r.nc, micro.Config{Name: routerSvc, Version: "1.0.0"})
	if err != nil {
		t.Fatalf("router: service API: %v", err)
	}
	if err := svc.AddEndpoint("keep-replies", micro.HandlerFunc(func(req micro.Request) {
		p := strings.TrimPrefix(req.Subject(), keepSubject)
		instance := string(req.Data())
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cc := jetstream.ConsumerConfig{
			Durable: "gw_" + instance, FilterSubject: "bot.v1.out." + p + "." + instance + ".*",
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, InactiveThreshold: time.Hour,
		}
		// The outbound consumers (sdk/durable/outbound.go).
		switch req.Headers().Get(keepHeader) {
		case "outbound-shared":
			cc.Durable, cc.FilterSubject, cc.InactiveThreshold = sharedOutbound, "bot.v1.out."+p+".*.*.o", 0
		case "outbound-instance":
			cc.Durable, cc.FilterSubject = "out_"+instance, "bot.v1.out."+p+"."+instance+".*.o"
		}
		_, err := r.js.CreateOrUpdateConsumer(kctx, outStream+p, cc)
		if err != nil {
			r.errs <- fmt.Errorf("reply consumer: %w", err)
			_ = req.Error("500", err.Error(), nil)
			return
		}
		_ = req.Respond(nil)
	}), micro.WithEndpointSubject(keepSubject+"*")); err != nil {
		t.Fatalf("router: keep-replies endpoint: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	m.svc = svc
	r.clean()
}

// inLastSeq returns the last sequence of BOTMESH_IN, as the router sees it.
func (m *mesh) inLastSeq(t *testing.T) uint64 {
	t.Helper()
	return m.lastSeq(t, inStream)
}

// lastSeq returns the last sequence of stream, as the router sees it.
func (m *mesh) lastSeq(t *testing.T, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := m.router.js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("router: stream %s: %v", stream, err)
	}
	return s.CachedInfo().State.LastSeq
}

// spyIn returns a subscription of the router's to bot.v1.in.>, to see that
// a refused publish reached nobody.
func (m *mesh) spyIn(t *testing.T) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 16)
	sub, err := m.router.nc.ChanSubscribe("bot.v1.in.>", ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	m.router.flush()
	return ch
}

func TestNATSIdentities(t *testing.T) {
	m := newMesh(t)

	t.Run("credentials", func(t *testing.T) {
		for _, r := range natsRoles {
			if _, err := nats.Connect(m.s.ClientURL(), nats.UserInfo(r.user, m.pw[r.user]+"x"), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("%s with a wrong password: %v, want %v", r.user, err, nats.ErrAuthorization)
			}
		}
		if _, err := nats.Connect(m.s.ClientURL(), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("without credentials: %v, want %v", err, nats.ErrAuthorization)
		}
		// The single shared user of old is gone.
		if _, err := nats.Connect(m.s.ClientURL(), nats.UserInfo("botmesh", m.pw["router"]), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("as botmesh: %v, want %v", err, nats.ErrAuthorization)
		}
	})

	t.Run("router", func(t *testing.T) {
		r := m.router
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Dialogs and confirmations: put, get, delete of the revision read (take).
		kv, err := r.js.KeyValue(ctx, dialogsKV)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "k1", []byte("pending")); err != nil {
			t.Fatalf("confirm put: %v", err)
		}
		e, err := kv.Get(ctx, "k1")
		if err != nil || string(e.Value()) != "pending" {
			t.Fatalf("confirm get: %v %v", e, err)
		}
		if err := kv.Delete(ctx, "k1", jetstream.LastRevision(e.Revision())); err != nil {
			t.Fatalf("confirm take: %v", err)
		}
		// Claims: created once, read, moved to another router.
		claims, err := r.js.KeyValue(ctx, claimsKV)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := claims.Create(ctx, "web.gw1.t1", []byte("router-a")); err != nil {
			t.Fatalf("claim: %v", err)
		}
		if _, err := claims.Create(ctx, "web.gw1.t1", []byte("router-b")); !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatalf("claim again: %v, want %v", err, jetstream.ErrKeyExists)
		}
		e, err = claims.Get(ctx, "web.gw1.t1")
		if err != nil {
			t.Fatalf("claim get: %v", err)
		}
		if _, err := claims.Update(ctx, "web.gw1.t1", []byte("router-b"), e.Revision()); err != nil {
			t.Fatalf("claim take: %v", err)
		}
		// Is the router that owns a claim alive? (Pinged by its service
		// id, which the claim holds.)
		if _, err := r.nc.Request("$SRV.PING."+routerSvc+"."+m.svc.Info().ID, nil, 5*time.Second); err != nil {
			t.Fatalf("ping a router by id: %v", err)
		}
		// Audit records.
		ack, err := r.js.Publish(ctx, "bot.v1.audit.web", []byte(`{"type":"io.botmesh.v1.audit_record"}`))
		if err != nil || ack.Stream != auditStream {
			t.Fatalf("audit: %+v %v", ack, err)
		}
		// The go-micro registry: watch, and query (a service answers).
		watch := make(chan *nats.Msg, 4)
		if _, err := r.nc.ChanSubscribe(registryW, watch); err != nil {
			t.Fatal(err)
		}
		svc := dial(t, m.s, "service", m.pw["service"])
		if _, err := svc.nc.Subscribe(registryQ, func(q *nats.Msg) { _ = q.Respond([]byte(`{"name":"go.micro.bot.echo"}`)) }); err != nil {
			t.Fatal(err)
		}
		svc.flush()
		if _, err := r.nc.Request(registryQ, []byte(`{"action":"list"}`), 5*time.Second); err != nil {
			t.Fatalf("registry query: %v", err)
		}
		if err := svc.nc.Publish(registryW, []byte(`{"action":"create"}`)); err != nil {
			t.Fatal(err)
		}
		svc.flush()
		receive(t, watch, "registry watch event")
		svc.clean()
		r.clean()

		// Schedules: a router stores one (a message schedule that fires
		// into bot.v1.sched.fire.<platform>), reads it back, takes what it
		// fires from its consumer, and removes another by asking the
		// server to purge it (it may not delete from the stream itself).
		ss, err := r.js.Stream(ctx, schedStream)
		if err != nil {
			t.Fatalf("schedules stream: %v", err)
		}
		def := "bot.v1.sched.def.c1.u1.abcdefgh"
		if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: def, Data: []byte("echo later"), Header: nats.Header{
			jetstream.MsgIDHeader: {"def-abcdefgh"}, "Nats-Schedule": {"@at " + time.Now().Add(time.Second).UTC().Format(time.RFC3339)},
			"Nats-Schedule-Target": {"bot.v1.sched.fire.web"}, "Nats-Schedule-TTL": {"10m"},
		}}); err != nil {
			t.Fatalf("store a schedule: %v", err)
		}
		if got, err := ss.GetLastMsgForSubject(ctx, def); err != nil || string(got.Data) != "echo later" {
			t.Fatalf("read a schedule back: %v %v", got, err)
		}
		fc, err := r.js.Consumer(ctx, schedStream, routersGroup)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := fc.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var fired jetstream.Msg
		for msg := range batch.Messages() {
			fired = msg
		}
		if fired == nil || fired.Subject() != "bot.v1.sched.fire.web" || string(fired.Data()) != "echo later" || fired.Headers().Get("Nats-Scheduler") != def {
			t.Fatalf("fired: %v (fetch: %v)", fired, batch.Error())
		}
		if err := fired.DoubleAck(ctx); err != nil {
			t.Fatalf("ack what fired: %v", err)
		}
		every := "bot.v1.sched.def.c1.u1.bcdefghi"
		if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: every, Header: nats.Header{
			jetstream.MsgIDHeader: {"def-bcdefghi"}, "Nats-Schedule": {"@every 1h"}, "Nats-Schedule-Target": {"bot.v1.sched.fire.web"},
		}}); err != nil {
			t.Fatalf("store a repeating schedule: %v", err)
		}
		if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: "bot.v1.sched.unset.bcdefghi", Header: nats.Header{
			jetstream.MsgIDHeader: {"unset-bcdefghi"}, "Nats-Schedule-Next": {"purge"}, "Nats-Scheduler": {every}, "Nats-TTL": {"1m"},
		}}); err != nil {
			t.Fatalf("remove a schedule: %v", err)
		}
		if _, err := ss.GetLastMsgForSubject(ctx, every); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("the removed schedule: %v, want %v", err, jetstream.ErrMsgNotFound)
		}
		r.clean()

		// A router reads and answers; it does not speak for a gateway,
		// and keeps its streams but cannot drop them.
		spy := m.spyIn(t)
		before := m.inLastSeq(t)
		for _, subject := range []string{
			"bot.v1.in.web",
			"$JS.API.STREAM.DELETE.BOTMESH_IN",
			"$JS.API.STREAM.PURGE.BOTMESH_OUT_web",
			"$JS.API.STREAM.DELETE.BOTMESH_OUT_web",
			"$JS.API.STREAM.DELETE.BOTMESH_AUDIT",
			"$JS.API.STREAM.CREATE.SOMETHING_ELSE",
			"$JS.API.CONSUMER.DELETE.BOTMESH_IN.routers",
			"$JS.API.STREAM.DELETE.BOTMESH_SCHEDULES",
			"$JS.API.STREAM.PURGE.BOTMESH_SCHEDULES",
			"$JS.API.STREAM.MSG.DELETE.BOTMESH_SCHEDULES",
			"$JS.API.CONSUMER.CREATE.BOTMESH_SCHEDULES.spy",
		} {
			r.mustNotPublish(subject)
		}
		m.router.flush()
		empty(t, spy, "router's publish on bot.v1.in.web")
		if after := m.inLastSeq(t); after != before {
			t.Errorf("BOTMESH_IN last sequence %d → %d: the router's message was stored", before, after)
		}
	})

	for _, role := range natsRoles {
		if role.platform == "" {
			continue
		}
		t.Run(role.user, func(t *testing.T) { testGateway(t, m, role) })
	}

	t.Run("service", func(t *testing.T) {
		svc := dial(t, m.s, "service", m.pw["service"])
		r := m.router
		// Registered: it announces itself and answers registry queries.
		watch := make(chan *nats.Msg, 4)
		if _, err := r.nc.ChanSubscribe(registryW, watch); err != nil {
			t.Fatal(err)
		}
		r.flush()
		if _, err := svc.nc.Subscribe(registryQ, func(q *nats.Msg) { _ = q.Respond([]byte(`{"name":"go.micro.bot.echo"}`)) }); err != nil {
			t.Fatal(err)
		}
		if err := svc.nc.Publish(registryW, []byte(`{"action":"create","service":{"name":"go.micro.bot.echo"}}`)); err != nil {
			t.Fatal(err)
		}
		svc.flush()
		receive(t, watch, "the service's registration")
		// Served: an RPC on its transport address (an inbox), answered
		// on the caller's.
		addr := svc.nc.NewInbox()
		if _, err := svc.nc.Subscribe(addr, func(req *nats.Msg) { _ = req.Respond([]byte("pong")) }); err != nil {
			t.Fatal(err)
		}
		svc.flush()
		if rep, err := r.nc.Request(addr, []byte("ping"), 5*time.Second); err != nil || string(rep.Data) != "pong" {
			t.Fatalf("RPC to the service: %v %v", rep, err)
		}
		// A client too (query, registry-cmd): it queries the registry.
		if _, err := svc.nc.Request(registryQ, []byte(`{"action":"list"}`), 5*time.Second); err != nil {
			t.Fatalf("registry query by a service: %v", err)
		}
		svc.clean()

		spy := m.spyIn(t)
		before := m.inLastSeq(t)
		for _, subject := range []string{
			"bot.v1.in.shell",
			"bot.v1.in.web",
			"bot.v1.out.web.gw1.t1",
			"bot.v1.audit.web",
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO.BOTMESH_IN",
			"$JS.API.STREAM.DELETE.BOTMESH_IN",
			"$JS.API.DIRECT.GET.BOTMESH_OUT_web.bot.v1.out.web.gw1.t1",
			"bot.v1.keep.web",
			"bot.v1.alive.web.gw1",
			"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_IN.routers",
			"$KV.botmesh_dialogs.k1",
			"$SRV.PING.botmesh-router",
			"bot.v1.sched.fire.web",
			"bot.v1.sched.def.c1.u1.abcdefgh",
			"$JS.API.STREAM.INFO.BOTMESH_SCHEDULES",
		} {
			svc.mustNotPublish(subject)
		}
		r.flush()
		empty(t, spy, "a service's publish on bot.v1.in")
		if after := m.inLastSeq(t); after != before {
			t.Errorf("BOTMESH_IN last sequence %d → %d: a service's message was stored", before, after)
		}
		for _, subject := range []string{"bot.v1.in.>", "bot.v1.out.>", "bot.v1.audit.>", "bot.v1.sched.>", "$SRV.>", "$JS.>"} {
			ch := svc.mustNotSubscribe(subject)
			defer empty(t, ch, "service's refused subscription to "+subject)
		}
		// What a refused subscription would have seen.
		if err := r.nc.Publish("bot.v1.out.web.gw1.t7", []byte("a reply")); err != nil {
			t.Fatal(err)
		}
		r.flush()
		svc.flush()
	})

	if bad := m.log.matching("Violation"); len(bad) > 0 {
		// Only the ones the subtests provoked; none from the allowed steps
		// (each asserted clean()).
		t.Logf("%d violations logged by the server (the refused steps)", len(bad))
	}
}

// testGateway checks the gateway of role.platform: a message in and its
// reply back, over JetStream and core NATS, and the refusals.
func testGateway(t *testing.T, m *mesh, role natsRole) {
	p := role.platform
	other := "slack"
	if p == other {
		other = "web"
	}
	g := dial(t, m.s, role.user, m.pw[role.user])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	replies := make(chan *nats.Msg, 16)
	if _, err := g.nc.ChanSubscribe("bot.v1.out."+p+".gw1.>", replies); err != nil {
		t.Fatal(err)
	}
	g.flush()

	// JetStream delivery: stored in BOTMESH_IN (the acknowledgement comes
	// to the gateway's inbox), answered by the router with a progress note
	// and a final reply.
	reply := "bot.v1.out." + p + ".gw1.t1"
	msg := &nats.Msg{Subject: "bot.v1.in." + p, Data: []byte("ping"), Header: nats.Header{
		jetstream.MsgIDHeader: {p + ":e1"}, "Botmesh-Test-Reply": {reply},
	}}
	ack, err := g.js.PublishMsg(ctx, msg)
	if err != nil || ack.Stream != inStream || ack.Duplicate {
		t.Fatalf("publish into %s: %+v %v", inStream, ack, err)
	}
	got := map[string]string{}
	for range 2 {
		r := receive(t, replies, "reply")
		got[r.Subject] = string(r.Data)
	}
	if got[reply] != "re: ping" || got[reply+".p"] != "working" {
		t.Fatalf("replies %q", got)
	}
	// Published again (a retry whose acknowledgement was lost): the stream
	// says duplicate.
	if ack, err := g.js.PublishMsg(ctx, msg); err != nil || !ack.Duplicate {
		t.Fatalf("retry: %+v %v", ack, err)
	}
	// The reply stream: the reply read back by a direct get of its subject.
	s, err := g.js.Stream(ctx, outStream+p)
	if err != nil {
		t.Fatalf("stream info %s: %v", outStream+p, err)
	}
	if !s.CachedInfo().Config.AllowDirect {
		t.Fatalf("%s does not allow direct gets: the gateway would need STREAM.MSG.GET", outStream+p)
	}
	// (The subscription may see the reply before the stream has stored it.)
	rm, err := s.GetLastMsgForSubject(ctx, reply)
	for i := 0; i < 20 && errors.Is(err, jetstream.ErrMsgNotFound); i++ {
		time.Sleep(100 * time.Millisecond)
		rm, err = s.GetLastMsgForSubject(ctx, reply)
	}
	if err != nil || string(rm.Data) != "re: ping" {
		t.Fatalf("direct get of %s: %v %v", reply, rm, err)
	}
	if shared[p] {
		testReplyConsumer(ctx, t, g, p, s, reply)
	}
	if p != "cli" {
		testOutboundConsumer(ctx, t, m, g, p, s)
	}
	// A router is alive.
	pong, err := g.nc.Request("$SRV.PING."+routerSvc, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("ping routers: %v", err)
	}
	var pr struct{ Type, Name string }
	if err := json.Unmarshal(pong.Data, &pr); err != nil || pr.Name != routerSvc {
		t.Fatalf("ping answer %q: %v", pong.Data, err)
	}
	// Core delivery: the reply subject travels with the message. (The
	// stream BOTMESH_IN, which exists here, takes the message too and
	// acknowledges it on that reply subject: a gateway drops that as a
	// malformed reply.)
	t2 := "bot.v1.out." + p + ".gw1.t2"
	if err := g.nc.PublishRequest("bot.v1.in."+p, t2, []byte("core ping")); err != nil {
		t.Fatal(err)
	}
	var coreReply, streamAck bool
	for !coreReply || !streamAck {
		r := receive(t, replies, "core reply and the stream's acknowledgement")
		switch {
		case r.Subject == t2 && string(r.Data) == "core: core ping" && !coreReply:
			coreReply = true
		case r.Subject == t2 && strings.Contains(string(r.Data), `"stream":"BOTMESH_IN"`) && !streamAck:
			streamAck = true
		default:
			t.Fatalf("on %s: %s %q", t2, r.Subject, r.Data)
		}
	}
	if role.platform != "cli" { // botctl does not de-duplicate
		// De-duplication with core delivery: an id recorded under the
		// platform's key prefix of the bucket the routers made.
		if _, err := g.js.KeyValue(ctx, seenKV); err != nil {
			t.Fatalf("bucket %s: %v", seenKV, err)
		}
		key := "$KV." + seenKV + "." + p + ".e1"
		if _, err := g.js.PublishMsg(ctx, &nats.Msg{Subject: key}, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
			t.Fatalf("record an event id: %v", err)
		}
		if _, err := g.js.PublishMsg(ctx, &nats.Msg{Subject: key}, jetstream.WithExpectLastSequencePerSubject(0)); !errors.Is(err, jetstream.ErrKeyExists) {
			t.Fatalf("record it again: %v, want %v", err, jetstream.ErrKeyExists)
		}
	}
	g.clean()

	// What a compromised gateway tries.
	spy := m.spyIn(t)
	before := m.inLastSeq(t)
	g.mustNotPublish("bot.v1.in." + other) // speak for another platform
	m.router.flush()
	empty(t, spy, role.user+"'s publish on bot.v1.in."+other)
	if after := m.inLastSeq(t); after != before {
		t.Errorf("BOTMESH_IN last sequence %d → %d: the forged message was stored", before, after)
	}
	// Read another platform's replies.
	theirs := g.mustNotSubscribe("bot.v1.out." + other + ".>")
	all := g.mustNotSubscribe("bot.v1.out.>")
	if err := m.router.nc.Publish("bot.v1.out."+other+".gw9.t1", []byte("not for "+p)); err != nil {
		t.Fatal(err)
	}
	m.router.flush()
	g.flush()
	empty(t, theirs, role.user+"'s refused subscription to bot.v1.out."+other+".>")
	empty(t, all, role.user+"'s refused subscription to bot.v1.out.>")
	// Forge replies, to its own platform's users or another's.
	g.mustNotPublish("bot.v1.out." + p + ".gw1.forged")
	g.mustNotPublish("bot.v1.out." + other + ".gw9.forged")
	g.flush()
	empty(t, replies, role.user+"'s forged reply")
	// Schedules are the routers' alone: a gateway that could store one,
	// or put a "fired" command into the stream, would run commands as
	// anyone on any platform, later.
	schedBefore := m.lastSeq(t, schedStream)
	for _, subject := range []string{
		"bot.v1.sched.fire." + p,
		"bot.v1.sched.fire." + other,
		"bot.v1.sched.def.c1.u1.forgedid",
		"bot.v1.sched.unset.abcdefgh",
		"$JS.API.STREAM.INFO.BOTMESH_SCHEDULES",
		"$JS.API.STREAM.UPDATE.BOTMESH_SCHEDULES",
		"$JS.API.STREAM.PURGE.BOTMESH_SCHEDULES",
		"$JS.API.DIRECT.GET.BOTMESH_SCHEDULES.bot.v1.sched.def.c1.u1.abcdefgh",
		"$JS.API.CONSUMER.CREATE.BOTMESH_SCHEDULES.spy.bot.v1.sched.>",
		"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_SCHEDULES.routers",
		"$JS.ACK.BOTMESH_SCHEDULES.routers.1.1.1.1.1",
	} {
		g.mustNotPublish(subject)
	}
	if after := m.lastSeq(t, schedStream); after != schedBefore {
		t.Errorf("%s last sequence %d → %d: a gateway's message was stored", schedStream, schedBefore, after)
	}
	// The streams and everything else that is not a gateway's.
	for _, subject := range []string{
		"$JS.API.STREAM.UPDATE.BOTMESH_IN",
		"$JS.API.STREAM.PURGE.BOTMESH_IN",
		"$JS.API.STREAM.CREATE.SOMETHING_ELSE",
		"$JS.API.STREAM.UPDATE.KV_botmesh_gateway_seen", // a republish would publish for it
		"$JS.API.STREAM.CREATE.KV_botmesh_gateway_seen",
		"$JS.API.CONSUMER.CREATE.BOTMESH_IN.spy",
		"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_IN.routers",
		"$JS.API.DIRECT.GET.BOTMESH_OUT_" + other + ".bot.v1.out." + other + ".gw9.t1",
		"$JS.API.DIRECT.GET.BOTMESH_OUT_" + p,
		"$JS.API.STREAM.MSG.GET.BOTMESH_OUT_" + p,
		"$JS.API.STREAM.INFO.BOTMESH_OUT_" + other,
		// Consumers are the routers' to make: a user who may create one
		// can make it push the stream to any subject (deliver_subject).
		"$JS.API.CONSUMER.CREATE.BOTMESH_OUT_" + p + ".spy.bot.v1.out." + p + ".>",
		"$JS.API.CONSUMER.CREATE.BOTMESH_OUT_" + p,
		"$JS.API.CONSUMER.DURABLE.CREATE.BOTMESH_OUT_" + p + ".spy",
		"$JS.API.CONSUMER.DELETE.BOTMESH_OUT_" + p + ".gw_gw1",
		"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_OUT_" + other + ".gw_gw9",
		"$JS.API.CONSUMER.INFO.BOTMESH_OUT_" + other + ".gw_gw9",
		"$JS.API.CONSUMER.LIST.BOTMESH_OUT_" + other,
		"$JS.ACK.BOTMESH_OUT_" + other + ".gw_gw9.1.1.1.1.1",
		// Another platform's outbound path (scheduled results,
		// notifications).
		"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_OUT_" + other + "." + sharedOutbound,
		"$JS.API.CONSUMER.MSG.NEXT.BOTMESH_OUT_" + other + ".out_gw9",
		"$JS.API.CONSUMER.INFO.BOTMESH_OUT_" + other + "." + sharedOutbound,
		"$JS.ACK.BOTMESH_OUT_" + other + "." + sharedOutbound + ".1.1.1.1.1",
		"$JS.API.CONSUMER.CREATE.BOTMESH_OUT_" + p + "." + sharedOutbound + ".bot.v1.out." + other + ".*.*.o",
		"bot.v1.out." + p + ".gw1.forged.o",
		"bot.v1.keep." + other,
		"bot.v1.alive." + other + ".gw9",
		"$JS.API.STREAM.INFO.BOTMESH_IN",
		"$KV." + seenKV + "." + other + ".e1",
		"$KV." + dialogsKV + ".k1",
		"bot.v1.audit." + p,
		registryW, // register a fake command service
		registryQ,
		"_INBOX.someone",
	} {
		g.mustNotPublish(subject)
	}
	for _, subject := range []string{"bot.v1.in.>", "bot.v1.audit.>", "bot.v1.sched.>", "$SRV.>", registryW, registryQ, ">", "bot.v1.alive." + other + ".>", "bot.v1.keep.>"} {
		ch := g.mustNotSubscribe(subject)
		defer empty(t, ch, role.user+"'s refused subscription to "+subject)
	}
	// Deleting the message stream, through the JetStream API: refused, and
	// the stream is still there.
	dctx, dcancel := context.WithTimeout(ctx, time.Second)
	defer dcancel()
	if err := g.js.DeleteStream(dctx, inStream); err == nil {
		t.Fatalf("%s deleted %s", role.user, inStream)
	}
	g.refused(`Publish to "$JS.API.STREAM.DELETE.BOTMESH_IN"`)
	m.inLastSeq(t)
	// Something on core NATS that the refused subscriptions would match.
	if err := m.router.nc.Publish("bot.v1.audit."+p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	m.router.flush()
	g.flush()
}

// unset removes the variable name for the rest of the test.
func unset(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restored after the test
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// routesOf returns the names of the servers s has routes to.
func routesOf(t *testing.T, s *server.Server) map[string]bool {
	t.Helper()
	rz, err := s.Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range rz.Routes {
		out[r.RemoteName] = true
	}
	return out
}

// The cluster of cluster.conf: two nodes with the route credentials form a
// cluster that carries the clients' traffic under the same permissions;
// nodes without the credentials, or with a client's, are not admitted.
func TestNATSClusterRoutes(t *testing.T) {
	pw := setNATSEnv(t, "")
	routePW := secret()
	t.Setenv(routePassword, routePW)
	ports := []int{freePort(t), freePort(t), freePort(t)} // the third: nobody
	for i, p := range ports {
		t.Setenv(fmt.Sprintf("BOTMESH_NATS_ROUTE_%d", i+1), fmt.Sprintf("nats-route://route:%s@127.0.0.1:%d", routePW, p))
	}
	var nodes []*server.Server
	for i, name := range []string{"nats", "nats-2"} {
		t.Setenv("NATS_SERVER_NAME", name)
		s, _ := startNATS(t, "nats/cluster.conf", func(o *server.Options) {
			if o.Cluster.Name != "botmesh" || o.Cluster.Username != "route" || o.Cluster.Password != routePW || len(o.Routes) != 3 {
				t.Fatalf("cluster.conf: cluster %q user %q, %d routes", o.Cluster.Name, o.Cluster.Username, len(o.Routes))
			}
			for _, u := range o.Routes {
				if p, _ := u.User.Password(); u.User.Username() != "route" || p != routePW {
					t.Fatalf("route %s does not carry the route credentials", u.Redacted())
				}
			}
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = ports[i]
		})
		nodes = append(nodes, s)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !routesOf(t, nodes[0])["nats-2"] || !routesOf(t, nodes[1])["nats"] {
		if time.Now().After(deadline) {
			t.Fatalf("no cluster within 15s: nats routes to %v, nats-2 to %v", routesOf(t, nodes[0]), routesOf(t, nodes[1]))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Across the cluster: a gateway on one node, the router on the other,
	// the same permissions.
	router := dial(t, nodes[0], "router", pw["router"])
	in := make(chan *nats.Msg, 4)
	if _, err := router.nc.ChanSubscribe("bot.v1.in.>", in); err != nil {
		t.Fatal(err)
	}
	router.flush()
	gw := dial(t, nodes[1], "gateway-web", pw["gateway-web"])
	deadline = time.Now().Add(10 * time.Second)
	for delivered := false; !delivered; {
		// The subscription reaches the other node shortly after.
		if err := gw.nc.Publish("bot.v1.in.web", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		gw.flush()
		select {
		case m := <-in:
			delivered = m.Subject == "bot.v1.in.web"
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("a gateway's message did not cross the cluster within 10s")
			}
		}
	}
	gw.mustNotPublish("bot.v1.in.slack")

	// Nodes that dial a member without the route credentials, with a
	// client's, or that a member would have to accept without them.
	for _, tc := range []struct{ name, userinfo string }{
		{"intruder-none", ""},
		{"intruder-client", "gateway-web:" + pw["gateway-web"] + "@"},
		{"intruder-guess", "route:" + routePW + "x@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := server.RoutesFromStr(fmt.Sprintf("nats-route://%s127.0.0.1:%d", tc.userinfo, ports[0]))
			s, log := runServer(t, &server.Options{
				ServerName: tc.name, Host: "127.0.0.1", Port: -1, NoSigs: true,
				Cluster: server.ClusterOpts{Name: "botmesh", Host: "127.0.0.1", Port: -1},
				Routes:  u,
			})
			deadline := time.Now().Add(10 * time.Second)
			for len(log.matching("Authorization Violation")) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no authorization violation within 10s; routes %v; errors %q", routesOf(t, s), log.matching(""))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if r := routesOf(t, s); len(r) != 0 {
				t.Errorf("%s has routes to %v", tc.name, r)
			}
			for i, n := range nodes {
				if r := routesOf(t, n); r[tc.name] || len(r) != 1 {
					t.Errorf("node %d routes to %v, want only its peer", i, r)
				}
			}
		})
	}
}

// The server refuses to start when a role's password is not set, rather
// than admitting that role with an empty one.
func TestNATSConfigNeedsEveryPassword(t *testing.T) {
	for _, conf := range []string{"nats/nats.conf", "nats/cluster.conf"} {
		for _, r := range natsRoles {
			t.Run(conf+"/"+r.user, func(t *testing.T) {
				setNATSEnv(t, "n")
				t.Setenv(routePassword, "r")
				for i := 1; i <= 3; i++ {
					t.Setenv(fmt.Sprintf("BOTMESH_NATS_ROUTE_%d", i), fmt.Sprintf("nats-route://route:r@127.0.0.1:%d", 6221+i))
				}
				if _, err := server.ProcessConfigFile(conf); err != nil {
					t.Fatalf("with every variable: %v", err)
				}
				unset(t, r.password)
				if _, err := server.ProcessConfigFile(conf); err == nil || !strings.Contains(err.Error(), r.password) {
					t.Errorf("without %s: %v", r.password, err)
				}
			})
		}
	}
}

// shared are the platforms whose gateways read their replies through a
// consumer of the reply stream (any replica can post to a conversation).
var shared = map[string]bool{"slack": true, "xmpp": true, "irc": true, "mail": true}

// testReplyConsumer checks what a gateway of a shared platform does with
// its reply consumer: asks the routers to make it, reads the stored reply
// from it and acknowledges it, reads a sibling's, and answers and pings
// siblings on the alive subjects.
func testReplyConsumer(ctx context.Context, t *testing.T, g *client, p string, s jetstream.Stream, reply string) {
	t.Helper()
	if _, err := g.nc.Request(keepSubject+p, []byte("gw1"), 5*time.Second); err != nil {
		t.Fatalf("ask the routers for the reply consumer: %v", err)
	}
	c, err := s.Consumer(ctx, "gw_gw1")
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch from the reply consumer: %v", err)
	}
	var got []string
	for msg := range batch.Messages() {
		got = append(got, msg.Subject()+" "+string(msg.Data()))
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatalf("acknowledge a reply: %v", err)
		}
	}
	if err := batch.Error(); err != nil || len(got) != 1 || got[0] != reply+" re: ping" {
		t.Fatalf("reply consumer gave %q, %v; want the stored reply", got, err)
	}
	// The consumers of the platform's reply stream are listed (a sibling
	// looks for a gateway that is gone).
	names := s.ListConsumers(ctx)
	n := 0
	for range names.Info() {
		n++
	}
	if err := names.Err(); err != nil || n == 0 {
		t.Fatalf("list reply consumers: %d, %v", n, err)
	}
	// Alive: a gateway subscribes to its alive subject; a sibling's
	// request there gets "no responders" once it is gone.
	if _, err := g.nc.Request(aliveSubject+p+".gw1", nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("ping a gateway that is gone: %v, want %v", err, nats.ErrNoResponders)
	}
	sub, err := g.nc.Subscribe(aliveSubject+p+".gw1", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	g.flush()
	if _, err := g.nc.Request(aliveSubject+p+".gw1", nil, 250*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("ping a live gateway: %v, want %v", err, nats.ErrTimeout)
	}
}

// testOutboundConsumer: the gateway asks the routers for its outbound
// consumer (Slack, XMPP, IRC: the platform's shared one; web, shell: its
// own) and reads from it what a router posts unasked.
func testOutboundConsumer(ctx context.Context, t *testing.T, m *mesh, g *client, p string, s jetstream.Stream) {
	t.Helper()
	// Instance gw2, whose live subscription is not the test's.
	kind, name := "outbound-instance", "out_gw2"
	if shared[p] {
		kind, name = "outbound-shared", sharedOutbound
	}
	req := &nats.Msg{Subject: keepSubject + p, Header: nats.Header{keepHeader: {kind}}, Data: []byte("gw2")}
	if _, err := g.nc.RequestMsg(req, 5*time.Second); err != nil {
		t.Fatalf("ask the routers for the outbound consumer: %v", err)
	}
	subject := "bot.v1.out." + p + ".gw2.s1-1.o"
	if _, err := m.router.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: nats.Header{jetstream.MsgIDHeader: {subject}}, Data: []byte("scheduled result")}); err != nil {
		t.Fatalf("router: store an outbound message: %v", err)
	}
	c, err := s.Consumer(ctx, name)
	if err != nil {
		t.Fatalf("outbound consumer info: %v", err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch from the outbound consumer: %v", err)
	}
	var got []string
	for msg := range batch.Messages() {
		got = append(got, msg.Subject()+" "+string(msg.Data()))
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatalf("acknowledge an outbound message: %v", err)
		}
	}
	if err := batch.Error(); err != nil || len(got) != 1 || got[0] != subject+" scheduled result" {
		t.Fatalf("outbound consumer gave %q, %v; want the stored message", got, err)
	}
}
