package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The fault matrix of issue 11, "When NATS itself falters: nothing lost,
// nothing twice, never a false failure". Each test runs a burst of commands
// through routers and a shell gateway, each its own process, to a command
// served from this process that counts which ids it ran and how often, and
// prints one line of counts:
//
//	faults: nats-restart sent=500 right=500 errors=0 duplicates=0 lost=0 false_failures=0 ran_twice=0 interim=0 stray=0 longest_wait=4.2s
//
// right: answered once, with the command's own answer; errors: error
// answers (final); duplicates: commands with more than one final answer;
// lost: no final answer; false_failures: an error answer for a command the
// service ran; ran_twice: run more than once; interim: notices such as
// "queued:" or "working on it…" (allowed); stray: lines when no command
// awaited an answer; longest_wait: from sending a command to its final
// answer, as the shell user sees it (the shell prints answers in the order
// of the lines, so a slow answer delays the ones after it).
//
// The tests run in parallel (at most -parallel at once, GOMAXPROCS by
// default) so that the 70 s one overlaps the others.

// burstRate is the pace of the bursts: 60 commands a second.
const burstRate = time.Second / 60

// faultRouterArgs are the routers' flags in the fault tests: no progress
// notes and no rate limits (one user sends hundreds of commands).
func faultRouterArgs(natsURL string, extra ...string) []string {
	return append([]string{"--nats_url", natsURL, "--log_level", "info", "--progress_after", "0", "--rate_user", "0", "--rate_channel", "0"}, extra...)
}

// A command that runs longer than the gateway's reply timeout (40 s by
// default) but within the router's timeout for it: the user gets no error
// before the answer ("working on it…" is fine) and the answer once.
func TestIntegrationFaultLongCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	const runs = 70 * time.Second
	url := startNATS(t)
	svc := serveFaultCommand(t, url, "slow", func(id string) time.Duration {
		if id == "probe" {
			return 0
		}
		return runs
	})
	// slow=90s, not 70s: a timeout equal to the command's run time would
	// race it. Progress notes after the default 5 s.
	args := []string{"--nats_url", url, "--log_level", "info", "--command_timeouts", "slow=90s", "--rate_user", "0", "--rate_channel", "0"}
	startRouters(t, args, "router-1", "router-2")
	sh := startShell(t, url)
	probe(t, sh, "slow", 30*time.Second)

	b := newBurst("long-command")
	go b.collect(sh, 0)
	const n = 500
	for _, id := range ids(0, n) {
		if err := b.send(sh, 0, "slow", id); err != nil {
			t.Fatal(err)
		}
	}
	if !b.waitAnswered(n, runs+40*time.Second) {
		t.Logf("not every command answered within %s", runs+40*time.Second)
	}
	b.settle(svc, time.Time{}, 3*time.Second, 15*time.Second)
	c := b.check(t, svc, true)
	if c.right == n && c.longest < runs {
		t.Errorf("answered after %s, before the command's %s: the test proved nothing", c.longest, runs)
	}
}

// nats-server (JetStream on a file store) killed with SIGKILL mid-burst and
// started again 3 s later on the same port and store: each of 500 commands
// is answered once, none run twice, no error for one that ran.
func TestIntegrationFaultNATSRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	ns := newNATSNode(t, "nats")
	ns.start(t)
	url := ns.url()
	svc := serveFaultCommand(t, url, "work", workTime)
	startRouters(t, faultRouterArgs(url), "router-1", "router-2")
	sh := startShell(t, url)
	probe(t, sh, "work", 30*time.Second)

	b := newBurst("nats-restart")
	go b.collect(sh, 0)
	const n, killAt = 500, 150
	marked, sent := b.sendSteady(sh, 0, "work", ids(0, n), burstRate, killAt)
	select {
	case <-marked:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d commands not sent after 30s", killAt)
	}
	ns.kill(t)
	killed := time.Now()
	time.Sleep(3 * time.Second)
	ns.start(t)
	restarted := time.Now()
	t.Logf("nats-server killed after %d commands sent, started again 3s later; %d commands sent while it was down", killAt, b.sentBetween(killed, restarted))
	select {
	case <-sent:
	case <-time.After(60 * time.Second):
		t.Fatal("burst not sent after 60s")
	}
	if !b.waitAnswered(n, 90*time.Second) {
		t.Log("not every command answered within 90s")
	}
	// A message a router held when NATS died comes again after the ack
	// wait (10 s) from the restarted server.
	b.settle(svc, restarted.Add(12*time.Second), 3*time.Second, 30*time.Second)
	b.check(t, svc, false)
}

// No router runs for 20 s while users send commands: each user hears within
// 3 s that the command is queued, and once a router starts each command is
// answered right, once. Two ways to have no router: none has started yet
// (no router has set up the message stream), and all that ran have stopped.
func TestIntegrationFaultNoRouter(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	for _, tc := range []struct {
		name          string
		routerStopped bool
	}{
		// With no router ever started there is no stream to keep a
		// message: the gateway says at once that the command did not run
		// (gateway.TestJetStreamDelivery). Once a router has set up the
		// stream, commands wait for the next one.
		{"all stopped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := startNATS(t)
			svc := serveFaultCommand(t, url, "work", workTime)
			// Users, each a shell gateway of its own: a shell prints a
			// line's interim notices only once the lines before it are
			// answered, so each user's first command shows whether a
			// notice comes at once.
			const users, per = 5, 100
			var shells []*shell
			for u := range users {
				shells = append(shells, startShell(t, url, "--shell_user", fmt.Sprintf("user%d", u)))
			}
			if tc.routerStopped {
				r := start(t, "router-0", "router", nil, faultRouterArgs(url)...)
				probe(t, shells[0], "work", 30*time.Second)
				if err := r.stop(t, syscall.SIGTERM, 40*time.Second); err != nil {
					t.Fatalf("router-0 exit after SIGTERM: %v", err)
				}
			}
			name := "no-router/" + strings.ReplaceAll(tc.name, " ", "-")
			b := newBurst(name)
			for u, sh := range shells {
				go b.collect(sh, u)
			}
			// 500 commands, 25 a second, the users in turn.
			firstSent := time.Now()
			for k := range per {
				for u, sh := range shells {
					if err := b.send(sh, u, "work", fmt.Sprint(u*per+k)); err != nil {
						t.Fatal(err)
					}
					time.Sleep(40 * time.Millisecond)
				}
			}
			time.Sleep(time.Until(firstSent.Add(20 * time.Second)))
			startRouters(t, faultRouterArgs(url), "router-1", "router-2")
			t.Log("router-1 and router-2 started, 20s after the first command")
			if !b.waitAnswered(users*per, 60*time.Second) {
				t.Log("not every command answered within 60s of the router's start")
			}
			b.settle(svc, time.Time{}, 3*time.Second, 15*time.Second)
			b.check(t, svc, true)

			// Who heard "queued:" within ~3 s: 3 s, and a second for the
			// gateway to find that no router runs and for the notice to
			// be printed.
			const within = 4 * time.Second
			b.mu.Lock()
			heard, cmds := 0, 0
			var late, delays []string
			for u := range users {
				var first, queued time.Time
				for k := range per {
					id := fmt.Sprint(u*per + k)
					if s := b.sentAt[id]; first.IsZero() || s.Before(first) {
						first = s
					}
					if q, ok := b.queuedAt[id]; ok {
						if queued.IsZero() || q.Before(queued) {
							queued = q
						}
						if q.Sub(b.sentAt[id]) <= within {
							cmds++
						}
					}
				}
				switch {
				case queued.IsZero():
					late = append(late, fmt.Sprintf("user%d: none", u))
					delays = append(delays, "none")
				case queued.Sub(first) > within:
					late = append(late, fmt.Sprintf("user%d: after %s", u, queued.Sub(first).Round(10*time.Millisecond)))
					delays = append(delays, queued.Sub(first).Round(10*time.Millisecond).String())
				default:
					heard++
					delays = append(delays, queued.Sub(first).Round(10*time.Millisecond).String())
				}
			}
			b.mu.Unlock()
			t.Logf("faults: %s queued_within_%s users=%d/%d commands=%d/%d (first notice per user after %s)", name, within, heard, users, cmds, users*per, strings.Join(delays, " "))
			if heard != users {
				t.Errorf("faults: %s: %d of %d users heard a \"queued:\" notice within %s of their first command, want all (%s)", name, heard, users, within, strings.Join(late, "; "))
			}
		})
	}
}

// A 3-node NATS cluster, the routers' stream replicated 3 times, and one
// node killed with SIGKILL mid-burst: the node that leads the stream (the
// gateway elsewhere), the one the gateway is connected to (the stream led
// elsewhere), the one that does both, or one a router is connected to (not
// the gateway's, the stream led elsewhere). Each case is arranged before
// the burst: the clients' nodes are read from the monitoring endpoint
// (/connz, by connection name), and the stream's leader is moved (a leader
// step-down with a preferred node). Where the routers and the test's own
// service connections are is left to chance, and logged.
func TestIntegrationFaultCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: run without -short")
	}
	t.Parallel()
	// One cluster at a time: creating the replicated streams of a fresh
	// cluster already takes routers about 10 s on a 2-CPU machine (see
	// startRouters), and two clusters at once would only add to it.
	for _, kill := range []string{"stream-leader", "gateway-node", "stream-leader+gateway-node", "router-node"} {
		t.Run(kill, func(t *testing.T) { clusterFault(t, kill) })
	}
}

func clusterFault(t *testing.T, kill string) {
	cl := startCluster(t)
	urls := cl.urls()
	svc := serveFaultCommand(t, urls, "work", workTime)
	routerArgs := faultRouterArgs(urls, "--stream_replicas", "3")
	routers := startRouters(t, routerArgs, "router-1", "router-2")
	router2 := routers[1]
	nc, err := nats.Connect(urls, nats.Name("faults-observer"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	leader := waitStream(t, nc)
	sh := startShell(t, urls)
	probe(t, sh, "work", 60*time.Second)
	clients := cl.clients(t)
	gw := connected(clients, "gateway")
	if len(gw) != 1 {
		t.Fatalf("gateway connected to %v, want one node (%s)", gw, describe(clients))
	}
	other := func(not ...string) string {
		for _, n := range cl.nodes {
			if !slices.Contains(not, n.name) {
				return n.name
			}
		}
		return ""
	}
	var victim string
	switch kill {
	case "stream-leader":
		// The leader on a node the gateway is not connected to.
		victim = other(gw[0])
		moveStreamLeader(t, nc, victim)
	case "gateway-node":
		victim = gw[0]
		if leader == victim {
			moveStreamLeader(t, nc, other(victim))
		}
	case "stream-leader+gateway-node":
		// The hardest case: the gateway loses its node and the stream
		// its leader at once.
		victim = gw[0]
		moveStreamLeader(t, nc, victim)
	case "router-node":
		// A node a router is on and the gateway is not. If both routers
		// landed on the gateway's node (each picks a node at random),
		// start router-2 again, a few times at most.
		for try := 0; ; try++ {
			if on := slices.DeleteFunc(connected(clients, "router"), func(n string) bool { return n == gw[0] }); len(on) > 0 {
				victim = on[0]
				break
			}
			if try == 5 {
				t.Fatalf("both routers on the gateway's node after 5 restarts of router-2: %s", describe(clients))
			}
			if err := router2.stop(t, syscall.SIGTERM, 40*time.Second); err != nil {
				t.Fatalf("router-2 exit after SIGTERM: %v", err)
			}
			router2 = startRouters(t, routerArgs, "router-2")[0]
			clients = cl.clients(t)
		}
		if leader == victim {
			moveStreamLeader(t, nc, other(victim))
		}
	}
	leader = waitStream(t, nc)
	consumerLeader := "?"
	if js, err := jetstream.New(nc); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if c, err := js.Consumer(ctx, durable.Stream, durable.Consumer); err == nil {
			if info, err := c.Info(ctx); err == nil && info.Cluster != nil {
				consumerLeader = info.Cluster.Leader
			}
		}
		cancel()
	}
	for _, r := range []*proc{routers[0], router2} {
		select {
		case <-r.done:
			t.Fatalf("%s exited before the burst: %v", r.name, r.err)
		default:
		}
	}
	clients = cl.clients(t)
	t.Logf("killing %s (%s) mid-burst; stream leader %s, consumer leader %s; clients: %s", victim, kill, leader, consumerLeader, describe(clients))

	b := newBurst("cluster/" + kill)
	go b.collect(sh, 0)
	const n, killAt = 500, 150
	marked, sent := b.sendSteady(sh, 0, "work", ids(0, n), burstRate, killAt)
	select {
	case <-marked:
	case <-time.After(30 * time.Second):
		t.Fatalf("%d commands not sent after 30s", killAt)
	}
	cl.node(victim).kill(t)
	killed := time.Now()
	select {
	case <-sent:
	case <-time.After(60 * time.Second):
		t.Fatal("burst not sent after 60s")
	}
	if !b.waitAnswered(n, 90*time.Second) {
		t.Log("not every command answered within 90s")
	}
	if info, err := streamInfo(nc); err == nil && info.Cluster != nil {
		t.Logf("after the kill: stream leader %s", info.Cluster.Leader)
	}
	// A message a router held through the killed node comes again after
	// the ack wait (10 s).
	b.settle(svc, killed.Add(12*time.Second), 3*time.Second, 30*time.Second)
	b.check(t, svc, false)
}
