package gateway

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// How replies survive what fails between a router and the user, with
// JetStream delivery. Routers store every final reply in the platform's
// reply stream (durable.ReplyStream) before they acknowledge the message.
//
//   - A reply that the gateway's subscription missed (NATS reconnecting, a
//     node that failed) is looked up in the stream: every pending one after
//     a reconnect, and any message's that waited for recheckAfter
//     (watchReplies).
//   - A shared input's replies (Slack, XMPP, IRC: any replica can post to
//     the conversation) also go through a durable consumer of the stream
//     per gateway instance, acknowledged once posted. When an instance is
//     gone (it does not answer on its alive subject for AdoptAfter) while
//     its consumer holds replies, a sibling of the same platform consumes
//     them and posts them (keepReplies).

// recheckAfter is how old a pending message is before the reply stream is
// asked for its reply, and how often again after that.
const recheckAfter = 5 * time.Second

// watchReplies reads from the reply streams the replies the subscription
// missed: after NATS reconnects, every pending message's; otherwise those of
// messages pending for longer than recheckAfter (a reply lost on the way
// from a NATS node that failed). While no message is pending it sleeps
// without a timer, so that an idle gateway is not woken every second.
func (g *Gateway) watchReplies(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	reconnects := g.nc.Stats().Reconnects
	all := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		g.mu.Lock()
		idle := len(g.pending) == 0
		g.mu.Unlock()
		if idle {
			// A message that comes now signals firstPending: the slot
			// keeps the signal until this select takes it.
			tick.Stop()
			select {
			case <-ctx.Done():
				return
			case <-g.firstPending:
			}
			tick.Reset(time.Second)
			continue
		}
		if n := g.nc.Stats().Reconnects; n != reconnects {
			reconnects, all = n, true
		}
		if !g.nc.IsConnected() {
			continue
		}
		if err := g.recover(ctx, all); err != nil {
			g.log.Debug("reply stream not readable yet", "err", err)
			continue
		}
		all = false
	}
}

// recoverBatch bounds the replies looked up in one round.
const recoverBatch = 512

// recover asks the reply streams for the replies of pending messages (all,
// or those pending for long) and handles those they have.
func (g *Gateway) recover(ctx context.Context, all bool) error {
	now := time.Now()
	due := map[string][]string{} // platform → reply subjects
	n := 0
	g.mu.Lock()
	for _, p := range g.pending {
		if n == recoverBatch {
			break
		}
		if all || now.Sub(p.sent) > recheckAfter && now.Sub(p.checked) > recheckAfter {
			p.checked = now
			platform := p.r.in.String()
			due[platform] = append(due[platform], p.ev.GetReplyTo())
			n++
		}
	}
	g.mu.Unlock()
	if n == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for platform, subjects := range due {
		stream, err := g.js.Stream(sctx, durable.ReplyStream(platform))
		if err != nil {
			return err
		}
		for _, subject := range subjects {
			m, err := stream.GetLastMsgForSubject(sctx, subject)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
			case err != nil:
				return err
			default:
				g.reply(subject, m.Data, m.Header, fromLookup)
			}
		}
	}
	return nil
}

// shared reports whether r's conversations can be posted to by any replica.
func shared(r *running) bool {
	s, ok := r.in.(adapter.Shared)
	return ok && s.SharedConversations()
}

// aliveSubject is what a gateway instance with a shared input subscribes
// to while it runs: a sibling's request there gets "no responders" once it
// is gone.
func aliveSubject(platform, instance string) string {
	return "bot.v1.alive." + platform + "." + instance
}

// adoptScanMax bounds the time between two looks at the siblings'
// consumers.
const adoptScanMax = 5 * time.Second

// keepReplies runs the reply stream consumer of a shared input, answers
// its siblings' pings, and posts the replies of siblings that are gone.
// It returns when ctx ends.
func (g *Gateway) keepReplies(ctx context.Context, r *running) {
	platform := r.in.String()
	// Siblings only need to see that the subscription is there: NATS
	// answers "no responders" at once when it is not. (A gateway may not
	// publish on inboxes, so it does not answer.)
	alive, err := g.nc.Subscribe(aliveSubject(platform, g.cfg.Instance), func(*nats.Msg) {})
	if err != nil {
		g.log.Warn("siblings cannot see this gateway; they may post its replies too", "err", err)
	} else {
		defer func() { _ = alive.Unsubscribe() }()
	}
	var stream jetstream.Stream
	var own jetstream.ConsumeContext
	wait := 100 * time.Millisecond
	for own == nil {
		stream, own, err = g.consume(ctx, r, g.cfg.Instance, fromConsumer, true)
		if err == nil {
			break
		}
		g.log.Debug("reply stream consumer not set up yet", "input", platform, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	defer own.Stop()
	g.log.Debug("replies kept for siblings", "input", platform, "consumer", durable.GatewayConsumer(g.cfg.Instance))
	if g.cfg.AdoptAfter < 0 {
		<-ctx.Done()
		return
	}
	a := &adopter{g: g, r: r, stream: stream, adopted: map[string]jetstream.ConsumeContext{}, silent: map[string]time.Time{}}
	defer a.stopAll()
	tick := time.NewTicker(min(g.cfg.AdoptAfter/2, adoptScanMax))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if g.nc.IsConnected() {
			a.scan(ctx)
		}
	}
}

// consume starts consuming the reply stream consumer of instance for r
// (asking a router to make it first if create), posting what it holds as
// src.
func (g *Gateway) consume(ctx context.Context, r *running, instance string, src source, create bool) (jetstream.Stream, jetstream.ConsumeContext, error) {
	platform := r.in.String()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if create {
		if err := durable.RequestGatewayConsumer(sctx, g.nc, platform, instance); err != nil {
			return nil, nil, err
		}
	}
	stream, err := g.js.Stream(sctx, durable.ReplyStream(platform))
	if err != nil {
		return nil, nil, err
	}
	c, err := stream.Consumer(sctx, durable.GatewayConsumer(instance))
	if err != nil {
		return nil, nil, err
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		subject := m.Subject()
		g.final(r, subject[strings.LastIndexByte(subject, '.')+1:], nil, src, m)
	}, jetstream.PullMaxMessages(256), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		g.log.Debug("reply stream consumer", "input", platform, "instance", instance, "err", err)
	}))
	if err != nil {
		return nil, nil, err
	}
	return stream, cc, nil
}

// adopter finds the reply consumers of siblings that are gone and posts
// what they hold.
type adopter struct {
	g       *Gateway
	r       *running
	stream  jetstream.Stream
	adopted map[string]jetstream.ConsumeContext // by consumer name
	silent  map[string]time.Time                // consumer name → first unanswered ping
}

// scan looks at the platform's reply consumers once.
func (a *adopter) scan(ctx context.Context) {
	g, platform := a.g, a.r.in.String()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	mine := durable.GatewayConsumer(g.cfg.Instance)
	prefix := chatopsv1.SubjectOutPrefix + platform + "."
	list := a.stream.ListConsumers(sctx)
	seen := map[string]bool{}
	for info := range list.Info() {
		name := info.Name
		instance, ok := strings.CutPrefix(info.Config.FilterSubject, prefix)
		instance, ok2 := strings.CutSuffix(instance, ".*")
		if name == mine || !ok || !ok2 || name != durable.GatewayConsumer(instance) {
			continue
		}
		seen[name] = true
		waiting := info.NumPending+uint64(info.NumAckPending) > 0
		cc := a.adopted[name]
		if !waiting && cc == nil {
			continue
		}
		if g.siblingAlive(platform, instance) {
			delete(a.silent, name)
			if cc != nil {
				cc.Stop()
				delete(a.adopted, name)
				g.log.Info("gateway is back; it posts its own replies again", "gateway", instance)
			}
			continue
		}
		first, known := a.silent[name]
		if !known {
			a.silent[name] = time.Now()
			continue
		}
		switch {
		case cc != nil && !waiting:
			// All posted: let it go (NATS removes it once nobody reads
			// it for the stream's max age; if more replies come, it is
			// taken again at once).
			cc.Stop()
			delete(a.adopted, name)
		case cc == nil && time.Since(first) >= g.cfg.AdoptAfter:
			_, cc, err := g.consume(ctx, a.r, instance, fromSibling, false)
			if err != nil {
				g.log.Warn("could not take the replies of a gateway that is gone", "gateway", instance, "err", err)
				continue
			}
			a.adopted[name] = cc
			g.log.Warn("gateway unreachable; posting its replies", "gateway", instance, "input", platform,
				"unreachable_for", time.Since(first).Round(time.Second), "replies", info.NumPending+uint64(info.NumAckPending))
		}
	}
	if err := list.Err(); err != nil {
		g.log.Debug("reply consumers not listed", "input", platform, "err", err)
		return
	}
	for name, cc := range a.adopted {
		if !seen[name] {
			cc.Stop()
			delete(a.adopted, name)
		}
	}
	for name := range a.silent {
		if !seen[name] {
			delete(a.silent, name)
		}
	}
}

func (a *adopter) stopAll() {
	for _, cc := range a.adopted {
		cc.Stop()
	}
}

// siblingAlive reports whether the gateway instance still subscribes to
// its alive subject. Only "no responders" counts as gone: the time-out a
// live sibling's subscription gives (it does not answer), or a NATS
// connection that is not up, says nothing certain.
func (g *Gateway) siblingAlive(platform, instance string) bool {
	_, err := g.nc.Request(aliveSubject(platform, instance), nil, aliveWait)
	return !errors.Is(err, nats.ErrNoResponders)
}

// aliveWait bounds a ping of a sibling: "no responders" comes at once.
const aliveWait = 250 * time.Millisecond
