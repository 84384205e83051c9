package slackgw

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/slack-go/slack"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Meta keys the input sets on the events it receives and reads back from
// their replies.
const (
	// MetaTS is the Slack timestamp (message id) of the user's message.
	MetaTS = "slack.ts"
	// MetaEvent is what the message came as: app_mention, message or
	// slash_command.
	MetaEvent = "slack.event"
	// MetaTeam is the workspace the event was delivered for.
	MetaTeam = "slack.team"
	// MetaChannelType is im, channel, group or mpim when Slack says.
	MetaChannelType = "slack.channel_type"
	// MetaRetry is Slack's retry number for a redelivered event.
	MetaRetry = "slack.retry"
	// MetaResponseURL is where a slash command's reply goes.
	MetaResponseURL = "slack.response_url"
	// MetaResponseType is in_channel or ephemeral, for slash commands.
	MetaResponseType = "slack.response_type"
	// MetaUser is the slash command's caller (for ephemeral replies).
	MetaUser = "slack.user"
	// MetaCommand is the slash command's name.
	MetaCommand = "slack.command"
)

// identity is who the bot is in the workspace, from auth.test, and how
// users address it in channels.
type identity struct {
	UserID string // the bot user, U…
	BotID  string // B…
	TeamID string
	Name   string // the bot user's name ("botmesh": "botmesh: ping")
	Prefix string // --prefix ("!ping"); empty: none
}

// addressing is the rule (adapter.Addressing) for the bot: its mention
// (<@U…>, the label dropped), its name, the prefix.
func (id identity) addressing() adapter.Addressing {
	return adapter.Addressing{Mentions: []string{"<@" + id.UserID + ">"}, Names: []string{id.Name}, Prefix: id.Prefix}
}

// leadingMention rewrites a mention of the bot with a label at the start
// of text ("<@UBOT|botmesh> ping") to the plain form ("<@UBOT> ping").
func leadingMention(text, botUserID string) string {
	t := strings.TrimLeftFunc(text, unicode.IsSpace)
	lead := "<@" + botUserID + "|"
	if botUserID == "" || !strings.HasPrefix(t, lead) {
		return text
	}
	end := strings.IndexByte(t, '>')
	if end < 0 {
		return text
	}
	return "<@" + botUserID + ">" + t[end+1:]
}

// callback is the envelope of an Events API delivery: the body Slack POSTs
// in http mode, the payload of an events_api envelope in Socket Mode.
type callback struct {
	Type      string          `json:"type"`
	TeamID    string          `json:"team_id"`
	EventID   string          `json:"event_id"`
	EventTime int64           `json:"event_time"`
	Challenge string          `json:"challenge"`
	Event     json.RawMessage `json:"event"`
}

// innerEvent holds the fields of app_mention and message events the input
// uses.
type innerEvent struct {
	Type        string          `json:"type"`
	Subtype     string          `json:"subtype"`
	User        string          `json:"user"`
	BotID       string          `json:"bot_id"`
	Text        string          `json:"text"`
	Channel     string          `json:"channel"`
	ChannelType string          `json:"channel_type"`
	TS          string          `json:"ts"`
	ThreadTS    string          `json:"thread_ts"`
	Team        string          `json:"team"`
	UserTeam    string          `json:"user_team"`
	Edited      json.RawMessage `json:"edited"`
	Hidden      bool            `json:"hidden"`
	UserProfile *struct {
		DisplayName string `json:"display_name"`
		RealName    string `json:"real_name"`
		Name        string `json:"name"`
	} `json:"user_profile"`
}

// errMalformed marks events that cannot be understood.
var errMalformed = errors.New("slack: malformed event")

// normalizeEvent turns an Events API callback into a message Event. It
// returns a nil Event and the reason when the bot ignores the event (bots,
// edits, joins, other channels' chatter, blank text), and an error wrapping
// errMalformed when the JSON is not an event it can read.
func normalizeEvent(raw []byte, self identity) (*chatopsv1.Event, string, error) {
	var cb callback
	if err := json.Unmarshal(raw, &cb); err != nil {
		return nil, "", fmt.Errorf("%w: %w", errMalformed, err)
	}
	if cb.Type != "event_callback" {
		return nil, "callback type " + strconv.Quote(cb.Type), nil
	}
	if cb.EventID == "" {
		return nil, "", fmt.Errorf("%w: event_callback without event_id", errMalformed)
	}
	var in innerEvent
	if len(cb.Event) == 0 {
		return nil, "", fmt.Errorf("%w: event_callback %s without event", errMalformed, cb.EventID)
	}
	if err := json.Unmarshal(cb.Event, &in); err != nil {
		return nil, "", fmt.Errorf("%w: event %s: %w", errMalformed, cb.EventID, err)
	}
	// app_mention: the bot was mentioned in a channel; message: in a
	// direct message (message.im), or in a channel when the app
	// subscribes to message.channels (for "!ping" and "botmesh: ping").
	room := true
	switch in.Type {
	case "app_mention":
	case "message":
		room = in.ChannelType != "im"
		if room && strings.Contains(in.Text, "<@"+self.UserID) {
			return nil, "a mention: its app_mention event carries it", nil
		}
	default:
		return nil, "event type " + strconv.Quote(in.Type), nil
	}
	switch {
	case in.BotID != "" || in.Subtype == "bot_message":
		return nil, "from a bot", nil
	case in.User != "" && in.User == self.UserID:
		return nil, "from the bot itself", nil
	case in.Subtype != "" && in.Subtype != "thread_broadcast" && in.Subtype != "file_share":
		return nil, "subtype " + strconv.Quote(in.Subtype), nil
	case len(in.Edited) > 0 && string(in.Edited) != "null":
		return nil, "an edit", nil
	case in.Hidden:
		return nil, "hidden", nil
	case in.User == "":
		return nil, "no user", nil
	}
	if in.Channel == "" || in.TS == "" {
		return nil, "", fmt.Errorf("%w: event %s: %s without channel or ts", errMalformed, cb.EventID, in.Type)
	}
	cmd, addressed := self.addressing().Command(leadingMention(in.Text, self.UserID), room)
	if !addressed {
		return nil, "not addressed to the bot", nil
	}
	text := plainText(cmd, self.UserID)
	if text == "" {
		return nil, "blank text", nil
	}
	team := firstNonEmpty(in.UserTeam, in.Team, cb.TeamID)
	name := ""
	if p := in.UserProfile; p != nil {
		name = firstNonEmpty(p.DisplayName, p.RealName, p.Name)
	}
	ev := &chatopsv1.Event{
		Id:     cb.EventID,
		From:   &chatopsv1.Peer{Id: in.User, Name: name, Team: team},
		To:     in.Channel,
		Data:   []byte(text),
		Thread: firstNonEmpty(in.ThreadTS, in.TS),
		Time:   tsTime(in.TS),
		Meta: map[string]string{
			MetaTS:    in.TS,
			MetaEvent: in.Type,
			MetaTeam:  cb.TeamID,
		},
	}
	if in.ChannelType != "" {
		ev.Meta[MetaChannelType] = in.ChannelType
	}
	if room {
		self.addressing().MarkRoom(ev.Meta)
	}
	return ev, "", nil
}

// normalizeSlash turns a slash command into a message Event; the bare
// command asks for help. It returns the reason when the command is not the
// input's.
func normalizeSlash(cmd slack.SlashCommand, command string, ephemeral bool, self identity) (*chatopsv1.Event, string, error) {
	if cmd.Command != command {
		return nil, "command " + strconv.Quote(cmd.Command), nil
	}
	if cmd.UserID == "" || cmd.ChannelID == "" || cmd.ResponseURL == "" {
		return nil, "", fmt.Errorf("%w: slash command without user_id, channel_id or response_url", errMalformed)
	}
	text := plainText(cmd.Text, self.UserID)
	if text == "" {
		text = "help"
	}
	// trigger_id is unique per invocation and kept when Slack redelivers
	// the same payload; response_url is too, as a fallback.
	id := cmd.TriggerID
	if id == "" {
		sum := sha256.Sum256([]byte(cmd.ResponseURL))
		id = hex.EncodeToString(sum[:12])
	}
	responseType := "in_channel"
	if ephemeral {
		responseType = "ephemeral"
	}
	return &chatopsv1.Event{
		Id:   "slash-" + id,
		From: &chatopsv1.Peer{Id: cmd.UserID, Name: cmd.UserName, Team: cmd.TeamID},
		To:   cmd.ChannelID,
		Data: []byte(text),
		Meta: map[string]string{
			MetaEvent:        "slash_command",
			MetaTeam:         cmd.TeamID,
			MetaResponseURL:  cmd.ResponseURL,
			MetaResponseType: responseType,
			MetaUser:         cmd.UserID,
			MetaCommand:      cmd.Command,
		},
	}, "", nil
}

// plainText turns Slack's message markup into the text the user typed:
// mentions of the bot are removed, other mentions become @id, channel
// links #name, links their label or URL, and &amp; &lt; &gt; their
// characters. The result is trimmed.
func plainText(s, botUserID string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(entity(s[i+1:i+j], botUserID))
		s = s[i+j+1:]
	}
	b.WriteString(s)
	return strings.TrimSpace(unescape(b.String()))
}

// entity renders one <…> element of Slack's markup.
func entity(tok, botUserID string) string {
	target, label, hasLabel := strings.Cut(tok, "|")
	switch {
	case strings.HasPrefix(target, "@"):
		if target[1:] == botUserID {
			return ""
		}
		if hasLabel && label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return target
	case strings.HasPrefix(target, "#"):
		if hasLabel && label != "" {
			return "#" + label
		}
		return target
	case strings.HasPrefix(target, "!"):
		if hasLabel && label != "" {
			return label
		}
		name, _, _ := strings.Cut(target[1:], "^")
		return "@" + name
	default:
		if hasLabel && label != "" {
			return label
		}
		return target
	}
}

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescape(s string) string { return unescaper.Replace(s) }

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// tsTime converts a Slack ts ("1700000000.000100") to a timestamp, nil if
// it is not one.
func tsTime(ts string) *timestamppb.Timestamp {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 || s > 253402300799 { // after 9999-12-31
		return nil
	}
	var us int64
	if frac != "" {
		if len(frac) > 6 {
			frac = frac[:6]
		}
		frac += strings.Repeat("0", 6-len(frac))
		if us, err = strconv.ParseInt(frac, 10, 64); err != nil || us < 0 {
			us = 0
		}
	}
	return timestamppb.New(time.Unix(s, us*1000).UTC())
}
