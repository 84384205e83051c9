package slackgw_test

import (
	"github.com/botmesh/botmesh/sdk/meshtest"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
)

const jsonType = "application/json"

// Only requests signed with the signing secret, within 5 minutes, get
// through; the rest get 401 and publish nothing.
func TestEventsAPISignature(t *testing.T) {
	fs := fakeslack.New(t)
	logs := &meshtest.Buffer{}
	in := startInput(t, fs, logs, "--slack_mode", "http")
	url := eventsURL(in)
	m := fs.Mention(general, user, "ping", "")
	body := m.Callback
	now := time.Now()

	for _, tc := range []struct {
		name string
		h    http.Header
	}{
		{"unsigned", http.Header{}},
		{"forged (other secret)", fakeslack.Sign("not-the-signing-secret", now, body)},
		{"stale (6 minutes old)", fakeslack.Sign(fs.SigningSecret, now.Add(-6*time.Minute), body)},
		{"from the future (6 minutes)", fakeslack.Sign(fs.SigningSecret, now.Add(6*time.Minute), body)},
		{"signature of another body", fakeslack.Sign(fs.SigningSecret, now, []byte(`{"type":"event_callback"}`))},
		{"no timestamp", func() http.Header {
			h := fakeslack.Sign(fs.SigningSecret, now, body)
			h.Del("X-Slack-Request-Timestamp")
			return h
		}()},
		{"signature not hex", func() http.Header {
			h := fakeslack.Sign(fs.SigningSecret, now, body)
			h.Set("X-Slack-Signature", "v0=zz")
			return h
		}()},
		{"timestamp of another time", func() http.Header {
			h := fakeslack.Sign(fs.SigningSecret, now, body)
			h.Set("X-Slack-Request-Timestamp", fakeslack.Sign(fs.SigningSecret, now.Add(-time.Second), body).Get("X-Slack-Request-Timestamp"))
			return h
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := fakeslack.Post(t, url, jsonType, body, tc.h)
			if code != http.StatusUnauthorized {
				t.Errorf("status %d %q, want 401", code, resp)
			}
			// Slash commands go through the same check.
			cmd := fakeslack.SlashForm(fs.Slash(general, user, "/bot", "ping"))
			h := tc.h.Clone()
			if h.Get("X-Slack-Signature") != "" && tc.name != "unsigned" {
				h = fakeslack.Sign("not-the-signing-secret", now, cmd)
			}
			if code, _ := fakeslack.Post(t, "http://"+in.Addr().String()+slackgw.CommandsPath, "application/x-www-form-urlencoded", cmd, h); code != http.StatusUnauthorized {
				t.Errorf("slash command: status %d, want 401", code)
			}
		})
	}
	noRecv(t, in, 200*time.Millisecond)
	if !strings.Contains(logs.String(), "request refused: not signed by Slack") {
		t.Error("refusals are not logged")
	}

	code, _ := fs.Deliver(t, url, jsonType, body, nil)
	if code != http.StatusOK {
		t.Fatalf("signed delivery: status %d", code)
	}
	if ev := recv(t, in, 5*time.Second); ev.GetId() != m.EventID || string(ev.GetData()) != "ping" || ev.GetThread() != m.TS {
		t.Errorf("signed delivery: event %v", ev)
	}
}

// url_verification is answered with its challenge (signed requests only).
func TestEventsAPIURLVerification(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil, "--slack_mode", "http")
	body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	code, resp := fs.Deliver(t, eventsURL(in), jsonType, body, nil)
	if code != http.StatusOK || resp != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Errorf("url_verification: %d %q", code, resp)
	}
	if code, _ := fakeslack.Post(t, eventsURL(in), jsonType, body, nil); code != http.StatusUnauthorized {
		t.Errorf("unsigned url_verification: %d, want 401", code)
	}
	noRecv(t, in, 100*time.Millisecond)
}

// A delivery Slack retries keeps its event id and is marked as a retry;
// slash commands arrive with their response_url; bad bodies get a clear
// 4xx and lose nothing that follows.
func TestEventsAPIDeliveries(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInput(t, fs, nil, "--slack_mode", "http", "--slack_ephemeral")
	url := eventsURL(in)

	m := fs.DM(dm, user, "ping", "")
	if code, _ := fs.Deliver(t, url, jsonType, m.Callback, nil); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	first := recv(t, in, 5*time.Second)
	retry := http.Header{"X-Slack-Retry-Num": {"1"}, "X-Slack-Retry-Reason": {"http_timeout"}}
	if code, _ := fs.Deliver(t, url, jsonType, m.Callback, retry); code != http.StatusOK {
		t.Fatalf("retry: status %d", code)
	}
	again := recv(t, in, 5*time.Second)
	if again.GetId() != first.GetId() || again.GetMeta()[slackgw.MetaRetry] != "1" {
		t.Errorf("retry: id %s (first %s), retry meta %q", again.GetId(), first.GetId(), again.GetMeta()[slackgw.MetaRetry])
	}

	cmd := fs.Slash(general, user, "/bot", "echo hi")
	if code, resp := fs.Deliver(t, "http://"+in.Addr().String()+slackgw.CommandsPath, "application/x-www-form-urlencoded", fakeslack.SlashForm(cmd), nil); code != http.StatusOK || resp != "" {
		t.Fatalf("slash command: %d %q", code, resp)
	}
	ev := recv(t, in, 5*time.Second)
	if string(ev.GetData()) != "echo hi" || ev.GetMeta()[slackgw.MetaResponseURL] != cmd.ResponseURL || ev.GetMeta()[slackgw.MetaResponseType] != "ephemeral" {
		t.Errorf("slash command event %v", ev)
	}

	for _, tc := range []struct {
		name, body string
		code       int
		says       string
	}{
		{"truncated JSON", `{"type":"event_callback","event":{`, http.StatusBadRequest, "malformed event JSON"},
		{"event without id", `{"type":"event_callback","event":{"type":"app_mention","user":"U1","text":"<@UBOT0001> x","channel":"C1","ts":"1.2"}}`, http.StatusBadRequest, "without event_id"},
		{"huge body", `{"type":"event_callback","event":{"text":"` + strings.Repeat("x", 2<<20) + `"}}`, http.StatusRequestEntityTooLarge, "body over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := fs.Deliver(t, url, jsonType, []byte(tc.body), nil)
			if code != tc.code || !strings.Contains(resp, tc.says) {
				t.Errorf("%d %q, want %d saying %q", code, resp, tc.code, tc.says)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	noRecv(t, in, 100*time.Millisecond)
	after := fs.Mention(general, user, "after the bad ones", "")
	if code, _ := fs.Deliver(t, url, jsonType, after.Callback, nil); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if ev := recv(t, in, 5*time.Second); ev.GetId() != after.EventID {
		t.Errorf("after bad requests: %v", ev)
	}
}

// When nothing takes messages, the listener answers 503 so Slack
// redelivers later, instead of accepting a message it cannot queue.
func TestEventsAPIBusy(t *testing.T) {
	fs := fakeslack.New(t)
	in := startInputWith(t, fs, nil, []slackgw.Option{slackgw.WithQueueSize(1)}, "--slack_mode", "http")
	one, two := fs.DM(dm, user, "one", ""), fs.DM(dm, user, "two", "")
	if code, _ := fs.Deliver(t, eventsURL(in), jsonType, one.Callback, nil); code != http.StatusOK {
		t.Fatalf("first: %d", code)
	}
	began := time.Now()
	code, _ := fs.Deliver(t, eventsURL(in), jsonType, two.Callback, nil)
	t.Logf("measured: 503 after %s", time.Since(began).Round(time.Millisecond))
	if code != http.StatusServiceUnavailable {
		t.Errorf("second with a full queue: %d, want 503", code)
	}
	if ev := recv(t, in, time.Second); ev.GetId() != one.EventID {
		t.Errorf("queued: %v", ev)
	}
	if code, _ := fs.Deliver(t, eventsURL(in), jsonType, two.Callback, http.Header{"X-Slack-Retry-Num": {"1"}}); code != http.StatusOK {
		t.Errorf("redelivery: %d", code)
	}
	if ev := recv(t, in, time.Second); ev.GetId() != two.EventID {
		t.Errorf("redelivered: %v", ev)
	}
}
