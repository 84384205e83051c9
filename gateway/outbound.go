package gateway

import (
	"context"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/durable"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// What the bot posts unasked (scheduled results, notifications) comes
// through the outbound path (sdk/durable/outbound.go): a durable consumer
// of the platform's reply stream that a router makes on the gateway's
// request. A Slack, XMPP or IRC gateway reads the platform's one consumer
// with its siblings (each message goes to one of them, and to another if
// the one that took it dies before posting it); a web or shell gateway
// reads its own (the sessions it holds). Each message is acknowledged once
// posted.

// firstOutboundWait bounds how long Run waits for the first request of each
// input's outbound consumer before the inputs start. A router that runs
// makes the consumer at once; until the consumer exists, a router refuses
// tell and mail to a platform no gateway has served (router/elsewhere.go),
// so a message taken before it would be refused for no reason. With no
// router running, the request fails at once (no responders) and nothing
// waits.
const firstOutboundWait = 2 * time.Second

// keepOutbound reads r's outbound consumer until ctx ends. tried gets a
// value once the first request for it has been answered or has failed.
func (g *Gateway) keepOutbound(ctx context.Context, r *running, tried chan<- struct{}) {
	platform := r.in.String()
	kind := durable.KeepOutboundInstance
	if shared(r) {
		kind = durable.KeepOutboundShared
	}
	wait := 100 * time.Millisecond
	for {
		cc, err := g.consumeOutbound(ctx, r, kind)
		if tried != nil {
			tried <- struct{}{}
			tried = nil
		}
		if err == nil {
			g.log.Debug("outbound consumer read", "input", platform, "kind", kind)
			<-ctx.Done()
			cc.Stop()
			return
		}
		g.log.Debug("outbound consumer not set up yet", "input", platform, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// consumeOutbound asks a router for r's outbound consumer and starts
// reading it.
func (g *Gateway) consumeOutbound(ctx context.Context, r *running, kind string) (jetstream.ConsumeContext, error) {
	platform := r.in.String()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name, err := durable.RequestOutboundConsumer(sctx, g.nc, platform, g.cfg.Instance, kind)
	if err != nil {
		return nil, err
	}
	stream, err := g.js.Stream(sctx, durable.ReplyStream(platform))
	if err != nil {
		return nil, err
	}
	c, err := stream.Consumer(sctx, name)
	if err != nil {
		return nil, err
	}
	return c.Consume(func(m jetstream.Msg) { g.outbound(r, m) },
		jetstream.PullMaxMessages(256),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			g.log.Debug("outbound consumer", "input", platform, "err", err)
		}))
}

// outbound posts a message of the outbound path once, and acknowledges it
// when posted; a copy handed out again (an acknowledgement lost) is
// acknowledged without posting it twice.
func (g *Gateway) outbound(r *running, m jetstream.Msg) {
	key := m.Subject()
	g.mu.Lock()
	if ps := g.posting[key]; ps != nil {
		g.mu.Unlock()
		go g.ackWhenPosted(r, m, ps)
		return
	}
	if _, ok := g.answered.get(key); ok {
		g.mu.Unlock()
		_ = m.Ack()
		return
	}
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(m.Data(), ev); err != nil {
		g.mu.Unlock()
		g.log.Warn("dropping a malformed outbound message", "subject", key, "bytes", len(m.Data()), "err", err)
		_ = m.Term()
		return
	}
	ps := newPost()
	g.posting[key] = ps
	g.answered.put(key, answeredByRouter)
	g.mu.Unlock()
	g.metrics.replies.WithLabelValues(r.in.String(), "outbound").Inc()
	g.log.Debug("posting an outbound message", "subject", key, "conversation", ev.GetTo())
	go g.ackWhenPosted(r, m, ps)
	select {
	case r.out <- delivery{ev: ev, token: key, post: ps}:
	case <-r.closed:
		g.log.Warn("outbound message after the input stopped; left for another gateway", "subject", key)
	}
}

// outboundCore posts an outbound message that came on the subscription,
// with core delivery (no stream to read it from): at most once, and once
// when several routers publish it (a watch announcement).
func (g *Gateway) outboundCore(subject string, data []byte) {
	g.mu.Lock()
	_, seen := g.answered.get(subject)
	if !seen {
		g.answered.put(subject, answeredByRouter)
	}
	g.mu.Unlock()
	if seen {
		return
	}
	r := g.inputFor(chatopsv1.ReplyPlatform(strings.TrimSuffix(subject, durable.OutboundSuffix)))
	ev := &chatopsv1.Event{}
	if err := proto.Unmarshal(data, ev); err != nil || r == nil {
		g.log.Warn("dropping an outbound message", "subject", subject, "bytes", len(data), "err", err)
		return
	}
	g.metrics.replies.WithLabelValues(r.in.String(), "outbound").Inc()
	g.deliver(r, ev, false)
}

// awaitOutbound waits until n values came on tried, firstOutboundWait
// passed or ctx ended, whichever is first.
func (g *Gateway) awaitOutbound(ctx context.Context, tried <-chan struct{}, n int) {
	timer := time.NewTimer(firstOutboundWait)
	defer timer.Stop()
	for range n {
		select {
		case <-tried:
		case <-timer.C:
			g.log.Debug("inputs start before every outbound consumer was asked for", "waited", firstOutboundWait)
			return
		case <-ctx.Done():
			return
		}
	}
}
