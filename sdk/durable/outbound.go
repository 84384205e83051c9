package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The outbound path: what the bot posts to a conversation that nobody is
// waiting an answer for at that moment (a scheduled command's result, a
// notification), as opposed to the reply to a message a gateway holds.
//
// A router stores it in the platform's reply stream, on the reply subject
// it would answer on with OutboundSuffix added:
//
//	bot.v1.out.<platform>.<instance>.<token>.o
//
// where <instance> is the gateway instance that took the message the
// conversation was last seen through (for a schedule, the message that set
// it). Gateways read these through a durable consumer that a router makes
// for them (they may not make consumers; see KeepSubjectPrefix):
//
//   - a platform whose conversations any replica can post to (Slack, XMPP,
//     IRC) has one consumer, OutboundConsumer, that every gateway of the
//     platform reads at once: each message goes to one of them, and to
//     another when the one that took it dies before it acknowledged it
//     (posted). Which instance took the first message does not matter.
//   - a platform whose conversations live in one gateway process (a web
//     chat session, a terminal) has a consumer per instance
//     (InstanceOutboundConsumer): the results wait in the stream while that
//     gateway is down and are posted when it is back; the web chat keeps
//     them in the session's history until the tab comes back.
//
// Gateways acknowledge a message once posted. The reply stream keeps a
// message for ReplyMaxAge, so a platform with no gateway for longer loses
// what waited. The live subscription of the instance sees the message too;
// gateways leave it to the consumer.

// OutboundSuffix ends the subject of an outbound message.
const OutboundSuffix = ".o"

// OutboundSubject returns the subject of the outbound message that goes
// where a reply on reply (a valid reply subject) would go.
func OutboundSubject(reply string) string { return reply + OutboundSuffix }

// IsOutbound reports whether subject is an outbound message's.
func IsOutbound(subject string) bool {
	rest, ok := strings.CutSuffix(subject, OutboundSuffix)
	return ok && chatopsv1.ValidReplySubject(rest)
}

// OutboundConsumer is the name of the consumer that every gateway of a
// platform with shared conversations reads.
const OutboundConsumer = "outbound"

// InstanceOutboundConsumer returns the name of the outbound consumer of a
// gateway instance of a platform whose conversations live in one process.
func InstanceOutboundConsumer(instance string) string {
	return "out_" + strings.TrimPrefix(GatewayConsumer(instance), "gw_")
}

// outboundFilter returns the subjects a platform's outbound consumer
// takes: every instance's ("" instance) or one instance's.
func outboundFilter(platform, instance string) string {
	if instance == "" {
		instance = "*"
	}
	return chatopsv1.SubjectOutPrefix + platform + "." + instance + ".*" + OutboundSuffix
}

// What a gateway asks the routers for on KeepSubject, in the KeepHeader
// header of its request (its instance in the body): no header is its
// reply consumer (GatewayConsumer).
const (
	KeepHeader = "Botmesh-Keep"
	// KeepOutboundShared asks for the platform's OutboundConsumer.
	KeepOutboundShared = "outbound-shared"
	// KeepOutboundInstance asks for the instance's own outbound consumer.
	KeepOutboundInstance = "outbound-instance"
)

// EnsureOutboundConsumer creates, or updates, the outbound consumer a
// gateway instance of platform asks for (kind: KeepOutboundShared or
// KeepOutboundInstance) and returns its name.
func EnsureOutboundConsumer(ctx context.Context, js jetstream.JetStream, platform, instance, kind string) (string, error) {
	if !chatopsv1.ValidToken(platform) || !chatopsv1.ValidToken(instance) {
		return "", fmt.Errorf("durable: platform %q, instance %q: each must be one subject token", platform, instance)
	}
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWaitReplies,
		MaxAckPending: 4096,
	}
	switch kind {
	case KeepOutboundShared:
		// Kept while the platform has no gateway: a new consumer would
		// post again what the stream still holds.
		cfg.Durable = OutboundConsumer
		cfg.Description = "what botmesh posts to " + platform + " conversations unasked (scheduled results, notifications); every " + platform + " gateway reads it"
		cfg.FilterSubject = outboundFilter(platform, "")
	case KeepOutboundInstance:
		cfg.Durable = InstanceOutboundConsumer(instance)
		cfg.Description = "what botmesh posts unasked to the " + platform + " conversations of gateway " + instance
		cfg.FilterSubject = outboundFilter(platform, instance)
		cfg.InactiveThreshold = GatewayConsumerInactive
	default:
		return "", fmt.Errorf("durable: %q is not an outbound consumer kind", kind)
	}
	if _, err := EnsureConsumer(ctx, js, ReplyStream(platform), cfg); err != nil {
		return "", fmt.Errorf("durable: outbound consumer %s of %s: %w", cfg.Durable, platform, err)
	}
	return cfg.Durable, nil
}

// RequestOutboundConsumer asks the routers for the outbound consumer of a
// gateway instance of platform (kind as EnsureOutboundConsumer's) and
// returns its name once one has made it.
func RequestOutboundConsumer(ctx context.Context, nc *nats.Conn, platform, instance, kind string) (string, error) {
	msg := &nats.Msg{Subject: KeepSubject(platform), Header: nats.Header{KeepHeader: []string{kind}}, Data: []byte(instance)}
	rsp, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return "", ErrNoRouter
	case err != nil:
		return "", err
	}
	if e := rsp.Header.Get("Nats-Service-Error"); e != "" {
		return "", fmt.Errorf("durable: the router could not make the outbound consumer: %s", e)
	}
	if kind == KeepOutboundShared {
		return OutboundConsumer, nil
	}
	return InstanceOutboundConsumer(instance), nil
}

// Keep makes what a gateway asks for on KeepSubject(platform): its reply
// consumer, or an outbound consumer (kind, the request's KeepHeader).
func Keep(ctx context.Context, js jetstream.JetStream, platform, instance, kind string) error {
	if kind == "" {
		return EnsureGatewayConsumer(ctx, js, platform, instance)
	}
	_, err := EnsureOutboundConsumer(ctx, js, platform, instance, kind)
	return err
}
