// Package fakeslack is a Slack for tests that speaks Slack's wire
// protocol, so the real slack-go client runs against it: the Web API
// methods the Slack input calls (on slack-go's slacktest server, with its
// chat.postMessage replaced by one that records), apps.connections.open
// with a websocket that sends real Socket Mode envelopes and records the
// acknowledgements, response_url endpoints, the three-step file upload,
// and Slack's request signing for Events API deliveries.
package fakeslack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Identities and credentials of the fake workspace (override the fields of
// Server before the input starts).
const (
	DefaultBotToken      = "xoxb-1111-2222-fakebottoken"
	DefaultAppToken      = "xapp-1-A0001-3333-fakeapptoken"
	DefaultSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	DefaultBotUserID     = "UBOT0001"
	DefaultBotID         = "BBOT0001"
	DefaultTeamID        = "T0001"
	DefaultAppID         = "A0001"
)

// Server is a fake Slack workspace.
type Server struct {
	// Credentials the fake accepts.
	BotToken, AppToken, SigningSecret string
	// Who the bot is.
	BotUserID, BotID, TeamID string
	// PingEvery is how often the websocket pings the client, as Slack does
	// (slack-go drops a socket that is not pinged for 30 s).
	PingEvery time.Duration

	t        testing.TB
	sts      *slacktest.Server
	upgrader websocket.Upgrader
	posted   chan Message

	mu        sync.Mutex
	tickets   map[string]bool
	conns     []*Conn // live sockets, oldest first
	accepted  int
	rr        int
	acks      map[string]chan Ack
	sentAt    map[string]time.Time
	posts     []Message
	files     map[string]*File
	responses map[string]int    // uses per response_url path
	respChan  map[string]string // channel per response_url path
	limits    map[string][]int
	calls     map[string]int
	notMember map[string]bool
	seq       int
	closed    bool
}

// Message is something the bot posted, as a user sees it.
type Message struct {
	// Method is how: chat.postMessage, chat.postEphemeral, response_url
	// or files.completeUploadExternal.
	Method      string
	Channel     string
	ThreadTS    string // the thread it went to, "" for the channel
	TS          string
	Text        string // as sent (Slack markup)
	Attachments []slack.Attachment
	// User is who sees an ephemeral message.
	User string
	// ResponseType is in_channel or ephemeral for response_url posts.
	ResponseType string
	ResponseURL  string
	// File is the uploaded file of a files.completeUploadExternal.
	File *File
	// PostedAt is when the fake took it.
	PostedAt time.Time
}

// File is an uploaded file.
type File struct {
	ID, Name, Title, SnippetType string
	Content                      string
}

// Visible returns the text a user reads: the message text and the
// attachments' texts, with Slack's &amp; &lt; &gt; decoded.
func (m Message) Visible() string {
	var parts []string
	if m.Text != "" {
		parts = append(parts, m.Text)
	}
	for _, a := range m.Attachments {
		parts = append(parts, a.Text)
	}
	return unescape(strings.Join(parts, "\n"))
}

// IsError reports whether the message is marked as an error (a red,
// "danger", attachment).
func (m Message) IsError() bool {
	for _, a := range m.Attachments {
		if a.Color == "danger" {
			return true
		}
	}
	return false
}

// Ephemeral reports whether only one user sees the message.
func (m Message) Ephemeral() bool {
	return m.Method == "chat.postEphemeral" || m.ResponseType == "ephemeral"
}

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescape(s string) string { return unescaper.Replace(s) }

// Escape encodes text as Slack does in the events it sends.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Ack is an acknowledgement the client sent for an envelope.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage
	// After is the time from sending the envelope to its ack.
	After time.Duration
}

// Conn is one Socket Mode websocket.
type Conn struct {
	ID   int
	ws   *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
}

func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// New starts a fake Slack; it stops when the test ends.
func New(t testing.TB) *Server {
	s := &Server{
		BotToken: DefaultBotToken, AppToken: DefaultAppToken, SigningSecret: DefaultSigningSecret,
		BotUserID: DefaultBotUserID, BotID: DefaultBotID, TeamID: DefaultTeamID,
		PingEvery: 2 * time.Second,
		t:         t,
		upgrader:  websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}, // slack-go sends Origin: https://api.slack.com
		posted:    make(chan Message, 10000),
		tickets:   map[string]bool{},
		acks:      map[string]chan Ack{},
		sentAt:    map[string]time.Time{},
		files:     map[string]*File{},
		responses: map[string]int{},
		respChan:  map[string]string{},
		limits:    map[string][]int{},
		calls:     map[string]int{},
		notMember: map[string]bool{},
	}
	s.sts = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", s.authTest)
		c.Handle("/apps.connections.open", s.connectionsOpen)
		c.Handle("/link", s.link)
		c.Handle("/chat.postMessage", s.chatPost)
		c.Handle("/chat.postEphemeral", s.chatPost)
		c.Handle("/conversations.open", s.conversationsOpen)
		c.Handle("/files.getUploadURLExternal", s.getUploadURL)
		c.Handle("/upload/", s.upload)
		c.Handle("/files.completeUploadExternal", s.completeUpload)
		c.Handle("/response/", s.responseURL)
	})
	s.sts.Start()
	t.Cleanup(s.Close)
	return s
}

// APIURL is the Web API base URL to give the client (--slack_api_url).
func (s *Server) APIURL() string { return s.sts.GetAPIURL() }

// Close drops every socket and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.conns
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	s.sts.Stop()
}

// RateLimit makes the next n calls of method answer HTTP 429 with
// Retry-After: retryAfter seconds.
func (s *Server) RateLimit(method string, n, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.limits[method] = append(s.limits[method], retryAfter)
	}
}

// NotMember makes posts and uploads to channel fail with not_in_channel,
// as for a channel the bot was not invited to.
func (s *Server) NotMember(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notMember[channel] = true
}

// Calls returns how many times method was called (429s included).
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Posts returns what the bot posted so far.
func (s *Server) Posts() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.posts...)
}

// NextPost returns the next message the bot posted, failing t after d.
func (s *Server) NextPost(t testing.TB, d time.Duration) Message {
	t.Helper()
	select {
	case m := <-s.posted:
		return m
	case <-time.After(d):
		t.Fatalf("fakeslack: the bot posted nothing within %s", d)
		return Message{}
	}
}

// NoPost fails t if the bot posts within d.
func (s *Server) NoPost(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.posted:
		t.Fatalf("fakeslack: unexpected post %s in %s: %q", m.Method, m.Channel, m.Visible())
	case <-time.After(d):
	}
}

func (s *Server) record(m Message) {
	m.PostedAt = time.Now()
	s.mu.Lock()
	s.posts = append(s.posts, m)
	s.mu.Unlock()
	s.posted <- m
}

// call counts a call and answers a pending rate limit; it reports whether
// the handler should go on.
func (s *Server) call(w http.ResponseWriter, method string) bool {
	s.mu.Lock()
	s.calls[method]++
	var retry int
	limited := len(s.limits[method]) > 0
	if limited {
		retry = s.limits[method][0]
		s.limits[method] = s.limits[method][1:]
	}
	s.mu.Unlock()
	if limited {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		w.WriteHeader(http.StatusTooManyRequests)
		return false
	}
	return true
}

func (s *Server) nextTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%d.%06d", 1700000000+s.seq, s.seq)
}

func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s%06d", prefix, s.seq)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func slackError(w http.ResponseWriter, code string) {
	writeJSON(w, map[string]any{"ok": false, "error": code})
}

// token returns the token of a Web API call: the form field slack-go
// sends for most methods, else the Authorization header.
func token(r *http.Request) string {
	if v := r.PostFormValue("token"); v != "" {
		return v
	}
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (s *Server) authTest(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "auth.test") {
		return
	}
	if token(r) != s.BotToken {
		slackError(w, "invalid_auth")
		return
	}
	writeJSON(w, map[string]any{
		"ok": true, "url": "https://fake.slack.com/", "team": "Fake Team", "user": "botmesh",
		"team_id": s.TeamID, "user_id": s.BotUserID, "bot_id": s.BotID,
	})
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "apps.connections.open") {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.AppToken {
		slackError(w, "invalid_auth")
		return
	}
	ticket := s.nextID("ticket-")
	s.mu.Lock()
	s.tickets[ticket] = true
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "url": "ws://" + r.Host + "/link?ticket=" + ticket})
}

// link is the Socket Mode websocket.
func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket]
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !valid {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.accepted++
	c := &Conn{ID: s.accepted, ws: ws, done: make(chan struct{})}
	s.conns = append(s.conns, c)
	n := len(s.conns)
	s.mu.Unlock()

	hello, _ := json.Marshal(map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": DefaultAppID},
	})
	if err := c.write(hello); err != nil {
		s.forget(c)
		return
	}
	go s.ping(c)
	s.readAcks(c) // until the socket closes
	s.forget(c)
}

func (s *Server) ping(c *Conn) {
	t := time.NewTicker(s.PingEvery)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.wmu.Lock()
			err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func (s *Server) readAcks(c *Conn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var a struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(data, &a); err != nil || a.EnvelopeID == "" {
			s.t.Errorf("fakeslack: client sent %q on the socket, not an acknowledgement", data)
			continue
		}
		s.mu.Lock()
		ch := s.acks[a.EnvelopeID]
		if ch == nil {
			ch = make(chan Ack, 4)
			s.acks[a.EnvelopeID] = ch
		}
		after := time.Since(s.sentAt[a.EnvelopeID])
		s.mu.Unlock()
		select {
		case ch <- Ack{EnvelopeID: a.EnvelopeID, Payload: a.Payload, After: after}:
		default:
			s.t.Errorf("fakeslack: envelope %s acknowledged more than 4 times", a.EnvelopeID)
		}
	}
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.conns {
		if o == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			close(c.done)
			break
		}
	}
	_ = c.ws.Close()
}

// Connections returns how many sockets are open.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Accepted returns how many sockets were opened since the start.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitAccepted waits until n sockets were opened since the start, failing
// t after d.
func (s *Server) WaitAccepted(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for s.Accepted() < n || s.Connections() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fakeslack: %d sockets opened (%d open), want %d within %s", s.Accepted(), s.Connections(), n, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Envelope is a Socket Mode request from Slack.
type Envelope struct {
	Type                   string // events_api, slash_commands, interactive
	Payload                json.RawMessage
	RetryAttempt           int
	RetryReason            string
	AcceptsResponsePayload bool
}

// Send sends env on the next socket in turn (Slack gives each envelope to
// one of the app's connections) and returns its envelope id.
func (s *Server) Send(t testing.TB, env Envelope) string { return s.SendOn(t, -1, env) }

// SendOn sends env on the socket at index conn among the open ones (-1:
// the next in turn) and returns its envelope id.
func (s *Server) SendOn(t testing.TB, conn int, env Envelope) string {
	t.Helper()
	id := s.nextID("env-")
	b, err := json.Marshal(map[string]any{
		"envelope_id": id, "type": env.Type, "payload": env.Payload,
		"accepts_response_payload": env.AcceptsResponsePayload,
		"retry_attempt":            env.RetryAttempt, "retry_reason": env.RetryReason,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.sendRaw(t, conn, id, b)
	return id
}

// SendRaw writes raw on a socket (-1: the next in turn), as Slack would a
// frame; envelopeID, if not empty, is the id whose ack WaitAck waits for.
func (s *Server) SendRaw(t testing.TB, conn int, envelopeID, raw string) {
	t.Helper()
	s.sendRaw(t, conn, envelopeID, []byte(raw))
}

func (s *Server) sendRaw(t testing.TB, conn int, id string, b []byte) {
	t.Helper()
	// A client that just connected may not be registered yet: the
	// handshake completes before the handler records the socket.
	deadline := time.Now().Add(5 * time.Second)
	for s.Connections() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("fakeslack: no socket open")
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.mu.Lock()
	if len(s.conns) == 0 {
		s.mu.Unlock()
		t.Fatal("fakeslack: no socket open")
	}
	if conn < 0 {
		conn = s.rr % len(s.conns)
		s.rr++
	}
	if conn >= len(s.conns) {
		s.mu.Unlock()
		t.Fatalf("fakeslack: socket %d of %d", conn, len(s.conns))
	}
	c := s.conns[conn]
	if id != "" {
		s.sentAt[id] = time.Now()
		if s.acks[id] == nil {
			s.acks[id] = make(chan Ack, 4)
		}
	}
	s.mu.Unlock()
	if err := c.write(b); err != nil {
		t.Fatalf("fakeslack: write on socket %d: %v", c.ID, err)
	}
}

// WaitAck returns the acknowledgement of envelope id, failing t after d.
func (s *Server) WaitAck(t testing.TB, id string, d time.Duration) Ack {
	t.Helper()
	s.mu.Lock()
	ch := s.acks[id]
	if ch == nil {
		ch = make(chan Ack, 4)
		s.acks[id] = ch
	}
	s.mu.Unlock()
	select {
	case a := <-ch:
		return a
	case <-time.After(d):
		t.Fatalf("fakeslack: envelope %s not acknowledged within %s", id, d)
		return Ack{}
	}
}

// Disconnect sends a disconnect envelope on every open socket, as Slack
// does before it refreshes a connection.
func (s *Server) Disconnect(t testing.TB, reason string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "applink-fake-1"}})
	s.mu.Lock()
	conns := append([]*Conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.write(b)
	}
}

// Drop closes every open socket without a close frame, as a network
// failure would.
func (s *Server) Drop() {
	s.mu.Lock()
	conns := append([]*Conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.UnderlyingConn().Close()
	}
}

// Said is a message a user said, as the event Slack delivers for it.
type Said struct {
	EventID  string
	TS       string
	Channel  string
	ThreadTS string
	// Callback is the Events API body (the payload of an events_api
	// envelope in Socket Mode).
	Callback json.RawMessage
}

// Envelope returns the events_api envelope that carries the message.
func (m Said) Envelope() Envelope { return Envelope{Type: "events_api", Payload: m.Callback} }

func (s *Server) callback(event map[string]any) Said {
	id, ts := s.nextID("Ev"), s.nextTS()
	event["ts"], event["event_ts"] = ts, ts
	cb, err := json.Marshal(map[string]any{
		"token": "verificationtokenunused", "team_id": s.TeamID, "api_app_id": DefaultAppID,
		"event": event, "type": "event_callback", "event_id": id, "event_time": 1700000000,
		"authorizations":        []map[string]any{{"enterprise_id": nil, "team_id": s.TeamID, "user_id": s.BotUserID, "is_bot": true, "is_enterprise_install": false}},
		"is_ext_shared_channel": false, "event_context": "4-fake",
	})
	if err != nil {
		panic(err)
	}
	m := Said{EventID: id, TS: ts, Channel: event["channel"].(string), Callback: cb}
	if th, ok := event["thread_ts"].(string); ok {
		m.ThreadTS = th
	}
	return m
}

// Mention is user saying "@bot text" in channel (an app_mention event),
// in thread threadTS if not empty.
func (s *Server) Mention(channel, user, text, threadTS string) Said {
	ev := map[string]any{
		"client_msg_id": s.nextID("msg-"), "type": "app_mention", "text": "<@" + s.BotUserID + "> " + Escape(text),
		"user": user, "team": s.TeamID, "channel": channel,
	}
	if threadTS != "" {
		ev["thread_ts"] = threadTS
	}
	return s.callback(ev)
}

// DM is user saying text in a direct message with the bot (a message.im
// event), in thread threadTS if not empty.
func (s *Server) DM(channel, user, text, threadTS string) Said {
	ev := map[string]any{
		"client_msg_id": s.nextID("msg-"), "type": "message", "text": Escape(text),
		"user": user, "team": s.TeamID, "channel": channel, "channel_type": "im",
	}
	if threadTS != "" {
		ev["thread_ts"] = threadTS
	}
	return s.callback(ev)
}

// Typed is user typing markup (Slack's: a mention of the bot is
// "<@UBOT0001>") in channel, of channelType im or channel: the message
// event (in a channel, of an app subscribed to message.channels), and
// before it, when the text mentions the bot in a channel, the app_mention
// event Slack sends as well.
func (s *Server) Typed(channel, channelType, user, markup string) []Said {
	var out []Said
	if channelType != "im" && strings.Contains(markup, "<@"+s.BotUserID) {
		out = append(out, s.callback(map[string]any{
			"client_msg_id": s.nextID("msg-"), "type": "app_mention", "text": markup,
			"user": user, "team": s.TeamID, "channel": channel,
		}))
	}
	return append(out, s.callback(map[string]any{
		"client_msg_id": s.nextID("msg-"), "type": "message", "text": markup,
		"user": user, "team": s.TeamID, "channel": channel, "channel_type": channelType,
	}))
}

// BotSays is another app's bot posting text in channel (channelType im or
// channel), mentioning the bot.
func (s *Server) BotSays(channel, channelType, text string) Said {
	ev := map[string]any{
		"type": "message", "subtype": "bot_message", "text": "<@" + s.BotUserID + "> " + Escape(text),
		"bot_id": "BOTHER01", "username": "otherbot", "channel": channel, "channel_type": channelType,
	}
	return s.callback(ev)
}

// SelfSays is the event Slack sends for a message the bot itself posted
// in channel.
func (s *Server) SelfSays(channel, channelType, text string) Said {
	ev := map[string]any{
		"type": "message", "text": Escape(text), "user": s.BotUserID, "bot_id": s.BotID,
		"team": s.TeamID, "channel": channel, "channel_type": channelType,
	}
	return s.callback(ev)
}

// Slash is user typing "/command text" in channel; the payload carries a
// response_url on this server.
func (s *Server) Slash(channel, user, command, text string) slack.SlashCommand {
	id := s.nextID("")
	path := "/response/" + s.TeamID + "/" + id + "/hookhash"
	s.mu.Lock()
	s.respChan[path] = channel
	s.mu.Unlock()
	return slack.SlashCommand{
		Token: "verificationtokenunused", TeamID: s.TeamID, TeamDomain: "fake",
		ChannelID: channel, ChannelName: "general", UserID: user, UserName: "ada",
		Command: command, Text: Escape(text), APIAppID: DefaultAppID,
		ResponseURL: strings.TrimSuffix(s.APIURL(), "/") + path,
		TriggerID:   id + ".1111.fake",
	}
}

// SlashEnvelope returns the slash_commands envelope that carries cmd.
func SlashEnvelope(cmd slack.SlashCommand) Envelope {
	b, err := json.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	return Envelope{Type: "slash_commands", Payload: b, AcceptsResponsePayload: true}
}

// SlashForm returns the form body Slack POSTs for cmd in http mode.
func SlashForm(cmd slack.SlashCommand) []byte {
	return []byte(url.Values{
		"token": {cmd.Token}, "team_id": {cmd.TeamID}, "team_domain": {cmd.TeamDomain},
		"channel_id": {cmd.ChannelID}, "channel_name": {cmd.ChannelName}, "user_id": {cmd.UserID},
		"user_name": {cmd.UserName}, "command": {cmd.Command}, "text": {cmd.Text},
		"api_app_id": {cmd.APIAppID}, "is_enterprise_install": {"false"},
		"response_url": {cmd.ResponseURL}, "trigger_id": {cmd.TriggerID},
	}.Encode())
}

// Sign returns the headers Slack signs a request with: X-Slack-Request-
// Timestamp and X-Slack-Signature, v0= and the hex HMAC-SHA256 of
// "v0:<timestamp>:<body>" keyed with the signing secret.
func Sign(secret string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = io.WriteString(mac, "v0:"+ts+":")
	_, _ = mac.Write(body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

// Deliver POSTs body to url as Slack does (signed with the server's
// signing secret now, with contentType), adding extra headers; it returns
// the status and the response body.
func (s *Server) Deliver(t testing.TB, url, contentType string, body []byte, extra http.Header) (int, string) {
	t.Helper()
	h := Sign(s.SigningSecret, time.Now(), body)
	for k, v := range extra {
		h[k] = v
	}
	return Post(t, url, contentType, body, h)
}

// Post POSTs body to url with headers h and returns the status and the
// response body.
func Post(t testing.TB, url, contentType string, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("fakeslack: POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *Server) chatPost(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/")
	if !s.call(w, method) {
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if token(r) != s.BotToken {
		slackError(w, "invalid_auth")
		return
	}
	m := Message{Method: method, Channel: r.PostForm.Get("channel"), ThreadTS: r.PostForm.Get("thread_ts"), Text: r.PostForm.Get("text"), User: r.PostForm.Get("user")}
	if a := r.PostForm.Get("attachments"); a != "" {
		if err := json.Unmarshal([]byte(a), &m.Attachments); err != nil {
			slackError(w, "invalid_attachments")
			return
		}
	}
	switch {
	case m.Channel == "":
		slackError(w, "channel_not_found")
		return
	case m.Text == "" && len(m.Attachments) == 0:
		slackError(w, "no_text")
		return
	case len([]rune(m.Text)) > 40000:
		slackError(w, "msg_too_long")
		return
	}
	s.mu.Lock()
	out := s.notMember[m.Channel]
	s.mu.Unlock()
	if out {
		slackError(w, "not_in_channel")
		return
	}
	m.TS = s.nextTS()
	s.record(m)
	if method == "chat.postEphemeral" {
		writeJSON(w, map[string]any{"ok": true, "message_ts": m.TS})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "message": map[string]any{"text": m.Text, "ts": m.TS, "thread_ts": m.ThreadTS}})
}

func (s *Server) conversationsOpen(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "conversations.open") {
		return
	}
	if token(r) != s.BotToken {
		slackError(w, "invalid_auth")
		return
	}
	users := r.PostFormValue("users")
	if users == "" || strings.Contains(users, ",") {
		slackError(w, "not_enough_users")
		return
	}
	writeJSON(w, map[string]any{"ok": true, "channel": map[string]any{"id": "D" + users}})
}

func (s *Server) getUploadURL(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "files.getUploadURLExternal") {
		return
	}
	if token(r) != s.BotToken {
		slackError(w, "invalid_auth")
		return
	}
	n, err := strconv.Atoi(r.PostFormValue("length"))
	if err != nil || n <= 0 || r.PostFormValue("filename") == "" {
		slackError(w, "invalid_arguments")
		return
	}
	id := s.nextID("F")
	s.mu.Lock()
	s.files[id] = &File{ID: id, Name: r.PostFormValue("filename"), SnippetType: r.PostFormValue("snippet_type")}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "upload_url": "http://" + r.Host + "/upload/" + id, "file_id": id})
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "upload") {
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/upload/")
	f, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, "no file: "+err.Error(), http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	file := s.files[id]
	if file == nil {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	file.Content = string(b)
	_, _ = fmt.Fprintf(w, "OK - %d", len(b))
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "files.completeUploadExternal") {
		return
	}
	if token(r) != s.BotToken {
		slackError(w, "invalid_auth")
		return
	}
	var summaries []slack.FileSummary
	if err := json.Unmarshal([]byte(r.PostFormValue("files")), &summaries); err != nil || len(summaries) != 1 {
		slackError(w, "invalid_arguments")
		return
	}
	channel := r.PostFormValue("channel_id")
	s.mu.Lock()
	file := s.files[summaries[0].ID]
	out := s.notMember[channel]
	s.mu.Unlock()
	switch {
	case file == nil || file.Content == "":
		slackError(w, "file_not_found")
		return
	case out:
		slackError(w, "not_in_channel")
		return
	}
	file.Title = summaries[0].Title
	m := Message{Method: "files.completeUploadExternal", Channel: channel, ThreadTS: r.PostFormValue("thread_ts"), Text: r.PostFormValue("initial_comment"), File: file, TS: s.nextTS()}
	s.record(m)
	writeJSON(w, map[string]any{"ok": true, "files": []map[string]any{{"id": file.ID, "title": file.Title}}})
}

// responseURL takes a slash command's delayed response; Slack accepts five
// per command.
func (s *Server) responseURL(w http.ResponseWriter, r *http.Request) {
	if !s.call(w, "response_url") {
		return
	}
	var msg struct {
		Text         string             `json:"text"`
		ResponseType string             `json:"response_type"`
		ThreadTS     string             `json:"thread_ts"`
		Attachments  []slack.Attachment `json:"attachments"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.responses[r.URL.Path]++
	uses := s.responses[r.URL.Path]
	channel := s.respChan[r.URL.Path]
	s.mu.Unlock()
	if uses > 5 {
		http.Error(w, "used_url", http.StatusNotFound)
		return
	}
	if msg.Text == "" && len(msg.Attachments) == 0 {
		http.Error(w, "no_text", http.StatusBadRequest)
		return
	}
	s.record(Message{Method: "response_url", Channel: channel, ResponseURL: "http://" + r.Host + r.URL.Path, ResponseType: msg.ResponseType, Text: msg.Text, Attachments: msg.Attachments, ThreadTS: msg.ThreadTS, TS: s.nextTS()})
	writeJSON(w, map[string]any{"ok": true})
}
