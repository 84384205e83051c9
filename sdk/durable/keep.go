package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A gateway whose conversations any replica can post to (Slack, XMPP, IRC)
// reads its final replies through a durable consumer of its platform's
// reply stream, and acknowledges each once posted; when it dies, a sibling
// reads what is left. Routers make these consumers, on a gateway's
// request: a NATS user allowed to create consumers could also make one
// that pushes the stream's messages to any subject, so gateways are not.

// KeepSubjectPrefix starts the subject on which a gateway of platform P
// asks the routers for its consumer: bot.v1.keep.P, with its instance name
// as the request's body.
const KeepSubjectPrefix = "bot.v1.keep."

// KeepSubject returns the subject of platform's consumer requests.
func KeepSubject(platform string) string { return KeepSubjectPrefix + platform }

// GatewayConsumer returns the name of a gateway instance's consumer: "gw_"
// and the instance, with what a consumer name may not hold replaced.
func GatewayConsumer(instance string) string {
	return "gw_" + strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' {
			return '-'
		}
		return r
	}, instance)
}

// AckWaitReplies is how long a gateway may take to post a reply before its
// consumer hands the reply out again; GatewayConsumerInactive is how long
// a consumer nobody reads is kept (then NATS removes it).
const (
	AckWaitReplies          = time.Minute
	GatewayConsumerInactive = ReplyMaxAge
)

// EnsureGatewayConsumer creates the consumer of a gateway instance of
// platform, or updates it, in the platform's reply stream.
func EnsureGatewayConsumer(ctx context.Context, js jetstream.JetStream, platform, instance string) error {
	if !chatopsv1.ValidToken(platform) || !chatopsv1.ValidToken(instance) {
		return fmt.Errorf("durable: platform %q, instance %q: each must be one subject token", platform, instance)
	}
	_, err := EnsureConsumer(ctx, js, ReplyStream(platform), jetstream.ConsumerConfig{
		Durable:           GatewayConsumer(instance),
		Description:       "replies to the " + platform + " messages of gateway " + instance + ", acknowledged once posted",
		FilterSubject:     chatopsv1.SubjectOutFinal(platform, instance),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           AckWaitReplies,
		MaxAckPending:     4096,
		InactiveThreshold: GatewayConsumerInactive,
	})
	if err != nil {
		return fmt.Errorf("durable: consumer of gateway %s: %w", instance, err)
	}
	return nil
}

// ErrNoRouter means no router answered a gateway's request for its
// consumer.
var ErrNoRouter = errors.New("durable: no router answered")

// RequestGatewayConsumer asks the routers for the consumer of a gateway
// instance of platform and returns once one has made it.
func RequestGatewayConsumer(ctx context.Context, nc *nats.Conn, platform, instance string) error {
	msg, err := nc.RequestWithContext(ctx, KeepSubject(platform), []byte(instance))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return ErrNoRouter
	case err != nil:
		return err
	}
	if e := msg.Header.Get("Nats-Service-Error"); e != "" {
		return fmt.Errorf("durable: the router could not make the consumer: %s", e)
	}
	return nil
}
