package slackgw_test

import (
	"context"
	"encoding/json"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
)

// Every envelope is acknowledged as soon as it arrives, before the message
// is taken by anyone, and the message then comes out as an Event.
func TestSocketModeAcksThenDelivers(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil)
	if err := in.Healthy(); err != nil {
		t.Fatalf("connected input unhealthy: %v", err)
	}

	m := fs.Mention(general, user, "list services", "")
	id := fs.Send(t, m.Envelope())
	ack := fs.WaitAck(t, id, 3*time.Second) // Slack's limit
	if len(ack.Payload) != 0 && string(ack.Payload) != "null" {
		t.Errorf("ack payload %s, want none", ack.Payload)
	}
	t.Logf("measured: envelope acknowledged %s after it was sent (nothing was reading events)", ack.After)

	ev := recv(t, in, 5*time.Second)
	if ev.GetId() != m.EventID || string(ev.GetData()) != "list services" || ev.GetTo() != general ||
		ev.GetThread() != m.TS || ev.GetFrom().GetId() != user || ev.GetFrom().GetTeam() != fs.TeamID ||
		ev.GetMeta()[slackgw.MetaTS] != m.TS {
		t.Errorf("event %v does not match the mention %+v", ev, m)
	}

	// A reply in a thread answers in that thread.
	th := fs.DM(dm, user, "ping", m.TS)
	fs.WaitAck(t, fs.Send(t, th.Envelope()), 3*time.Second)
	if ev := recv(t, in, 5*time.Second); ev.GetThread() != m.TS || ev.GetMeta()[slackgw.MetaTS] != th.TS {
		t.Errorf("threaded DM: thread %q ts %q, want thread %q ts %q", ev.GetThread(), ev.GetMeta()[slackgw.MetaTS], m.TS, th.TS)
	}
}

// Envelopes of every kind are acknowledged, malformed ones included, and a
// bad envelope loses nothing that follows it.
func TestSocketModeEveryEnvelopeAcknowledged(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &meshtest.Buffer{}
	in := startInput(t, fs, logs)

	ignored := fs.Send(t, fakeslack.Envelope{Type: "events_api", Payload: json.RawMessage(`{"type":"event_callback","event_id":"EvR1","team_id":"T0001","event":{"type":"reaction_added","user":"UADA0001","reaction":"tada","item":{"type":"message","channel":"CGENERAL1","ts":"1.2"},"event_ts":"3.4"}}`)})
	interactive := fs.Send(t, fakeslack.Envelope{Type: "interactive", Payload: json.RawMessage(`{"type":"block_actions","user":{"id":"UADA0001"},"actions":[]}`)})
	badPayload := fs.Send(t, fakeslack.Envelope{Type: "slash_commands", Payload: json.RawMessage(`["not","a","command"]`)})
	badEvent := fs.Send(t, fakeslack.Envelope{Type: "events_api", Payload: json.RawMessage(`{"type":"event_callback","event":{"type":"app_mention","text":"<@UBOT0001> no id","user":"UADA0001","channel":"CGENERAL1","ts":"1.2"}}`)})
	fs.SendRaw(t, -1, "", `{"type":"events_api","envelope_id":`) // truncated JSON, no id to ack
	unknown := "env-unknown-type"
	fs.SendRaw(t, -1, unknown, `{"type":"brand_new_thing","envelope_id":"env-unknown-type","payload":{}}`)
	for _, id := range []string{ignored, interactive, badPayload, badEvent, unknown} {
		fs.WaitAck(t, id, 3*time.Second)
	}

	good := fs.DM(dm, user, "still here", "")
	fs.WaitAck(t, fs.Send(t, good.Envelope()), 3*time.Second)
	if ev := recv(t, in, 5*time.Second); ev.GetId() != good.EventID || string(ev.GetData()) != "still here" {
		t.Errorf("after bad envelopes: event %s %q, want %s \"still here\"", ev.GetId(), ev.GetData(), good.EventID)
	}
	noRecv(t, in, 100*time.Millisecond)
	out := logs.String()
	for _, want := range []string{"malformed socket mode envelope acknowledged and dropped", "event acknowledged and dropped", "event_callback without event_id"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if err := in.Healthy(); err != nil {
		t.Errorf("unhealthy after bad envelopes: %v", err)
	}
}

// A redelivered envelope keeps the event id (the gateway drops the second
// one) and says it is a retry; a slash command arrives with its
// response_url.
func TestSocketModeRedeliveryAndSlash(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil, "--slack_command", "/mesh")
	m := fs.Mention(general, user, "ping", "")
	fs.WaitAck(t, fs.Send(t, m.Envelope()), 3*time.Second)
	first := recv(t, in, 5*time.Second)
	env := m.Envelope()
	env.RetryAttempt, env.RetryReason = 1, "timeout"
	fs.WaitAck(t, fs.Send(t, env), 3*time.Second)
	again := recv(t, in, 5*time.Second)
	if again.GetId() != first.GetId() || again.GetMeta()[slackgw.MetaRetry] != "1" || first.GetMeta()[slackgw.MetaRetry] != "" {
		t.Errorf("redelivery: id %s retry %q (first %s retry %q)", again.GetId(), again.GetMeta()[slackgw.MetaRetry], first.GetId(), first.GetMeta()[slackgw.MetaRetry])
	}

	other := fs.Slash(general, user, "/other", "deploy")
	fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(other)), 3*time.Second)
	cmd := fs.Slash(general, user, "/mesh", "echo <hi>")
	fs.WaitAck(t, fs.Send(t, fakeslack.SlashEnvelope(cmd)), 3*time.Second)
	ev := recv(t, in, 5*time.Second)
	if string(ev.GetData()) != "echo <hi>" || ev.GetTo() != general || ev.GetMeta()[slackgw.MetaResponseURL] != cmd.ResponseURL ||
		ev.GetMeta()[slackgw.MetaResponseType] != "in_channel" || ev.GetThread() != "" || ev.GetId() != "slash-"+cmd.TriggerID {
		t.Errorf("slash command event %v", ev)
	}
	noRecv(t, in, 100*time.Millisecond) // /other was not the bot's
}

// Slack's disconnect envelope and a dropped socket both lead to a new
// connection (a new apps.connections.open), and messages flow on it.
func TestSocketModeReconnects(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInputWith(t, fs, nil, []slackgw.Option{slackgw.WithReconnectBackoff(100*time.Millisecond, time.Second, 30*time.Second)})
	fs.WaitAccepted(t, 1, 5*time.Second)

	for i, tc := range []struct {
		name   string
		break_ func()
	}{
		{"disconnect envelope", func() { fs.Disconnect(t, "refresh_requested") }},
		{"dropped socket", fs.Drop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			tc.break_()
			fs.WaitAccepted(t, i+2, 10*time.Second)
			t.Logf("measured: new socket %s after the %s", time.Since(began).Round(time.Millisecond), tc.name)
			m := fs.DM(dm, user, "after "+tc.name, "")
			deadline := time.Now().Add(5 * time.Second)
			for fs.Connections() != 1 { // the old socket may still close
				if time.Now().After(deadline) {
					t.Fatalf("%d sockets open, want 1", fs.Connections())
				}
				time.Sleep(5 * time.Millisecond)
			}
			fs.WaitAck(t, fs.Send(t, m.Envelope()), 3*time.Second)
			if ev := recv(t, in, 5*time.Second); ev.GetId() != m.EventID {
				t.Errorf("after reconnecting: event %s, want %s", ev.GetId(), m.EventID)
			}
			if err := in.Healthy(); err != nil {
				t.Errorf("unhealthy after reconnecting: %v", err)
			}
		})
	}
	if n := fs.Calls("apps.connections.open"); n != 3 {
		t.Errorf("apps.connections.open called %d times, want 3 (one per socket)", n)
	}
}

// A socket that keeps dropping right after it opens is reopened with a
// growing delay, not in a tight loop.
func TestSocketModeBacksOff(t *testing.T) {
	fs := fakeslack.New(t)
	const base = 200 * time.Millisecond
	startInputWith(t, fs, nil, []slackgw.Option{slackgw.WithReconnectBackoff(base, 10*base, 30*time.Second)})
	fs.WaitAccepted(t, 1, 5*time.Second)
	var gaps []time.Duration
	for n := 2; n <= 4; n++ {
		began := time.Now()
		fs.Drop()
		fs.WaitAccepted(t, n, 10*time.Second)
		gaps = append(gaps, time.Since(began))
	}
	t.Logf("measured: reconnect delays after consecutive quick drops: %v", gaps)
	// Lower bounds only: the delays are base, 2·base, 4·base plus the
	// time to reconnect.
	for i, g := range gaps {
		if want := base << i; g < want {
			t.Errorf("reconnect %d after %s, want at least %s", i+1, g, want)
		}
	}
}

// Healthy reports the connection: an error before Start, nil when
// connected, an error that says why while Slack is unreachable.
func TestSocketModeHealth(t *testing.T) {
	fs := fakeslack.New(t)
	in := newInputWith(t, fs, nil, []slackgw.Option{slackgw.WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond, time.Minute)})
	if err := in.Healthy(); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("before start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	if err := in.Healthy(); err != nil {
		t.Fatalf("after start: %v", err)
	}
	fs.Close() // Slack gone: the socket drops and reconnecting fails
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err = in.Healthy(); err == nil || !strings.Contains(err.Error(), "open socket"); err = in.Healthy() {
		if time.Now().After(deadline) {
			t.Fatalf("10s after Slack went away, health says %v; want why the socket does not open", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("unhealthy: %v", err)
}

// A refused token stops Start with an error that says which token.
func TestSocketModeStartRefused(t *testing.T) {
	for _, tc := range []struct {
		name, flag, value, want string
	}{
		{"bot token", "--slack_bot_token", "xoxb-revoked", "auth.test"},
		{"app token", "--slack_app_token", "xapp-revoked", "open socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := fakeslack.New(t)
			in := newInput(t, fs, nil, tc.flag, tc.value)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := in.Start(ctx)
			defer in.Stop(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "invalid_auth") {
				t.Errorf("start: %v; want an invalid_auth error from %s", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Error("start waited for its deadline instead of failing")
			}
		})
	}
}
