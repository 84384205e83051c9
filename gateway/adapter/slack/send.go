package slackgw

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackutilsx"
)

const (
	// MaxMessageChars is the most characters the input puts in one Slack
	// message. Slack truncates a message's text after 40,000 characters
	// and asks apps to stay under 4,000 (chat.postMessage docs); 3,900
	// leaves room for the code fences.
	MaxMessageChars = 3900
	// MaxParts is the most messages one reply is split into. A longer
	// reply is uploaded as a text file instead; 4 also stays within the 5
	// uses Slack allows a slash command's response_url.
	MaxParts = 4
	// maxAttempts bounds the tries of one Web API call that Slack
	// rate-limits (HTTP 429 with Retry-After).
	maxAttempts = 5
)

const (
	fenceOpen  = "```\n"
	fenceClose = "\n```"
)

// rendered is a reply laid out for Slack.
type rendered struct {
	parts []string // message texts: escaped, in a code block when multi-line
	full  string   // the whole text as the service returned it, for a file
	chars int      // characters in full
	isErr bool
}

// render lays out a reply: markup characters escaped (a result cannot
// mention @channel or a user), a multi-line result in a code block, split
// into messages of at most MaxMessageChars at line breaks where it can.
func render(ev *chatopsv1.Event) rendered {
	r := rendered{isErr: ev.GetType() == chatopsv1.EventType_EVENT_TYPE_ERROR}
	text := strings.TrimRight(strings.ToValidUTF8(string(ev.GetData()), "\uFFFD"), " \t\r\n")
	if strings.TrimSpace(text) == "" {
		text = "(no output)"
		if r.isErr {
			text = "(an error without a message)"
		}
	}
	r.full, r.chars = text, utf8.RuneCountInString(text)
	code := strings.Contains(text, "\n")
	budget := MaxMessageChars
	if code {
		budget -= len(fenceOpen) + len(fenceClose)
	}
	for _, chunk := range split(text, budget) {
		esc := slackutilsx.EscapeMessage(chunk)
		if code {
			// A fence inside the text would end the block early.
			esc = fenceOpen + strings.ReplaceAll(esc, "```", "`\u200b`\u200b`") + fenceClose
		}
		r.parts = append(r.parts, esc)
	}
	return r
}

// runeCost is what a character costs in a message once escaped (and, for
// a backtick, once a fence inside a code block is broken up).
func runeCost(r rune) int {
	switch r {
	case '&':
		return len("&amp;")
	case '<', '>':
		return len("&lt;")
	case '`':
		return 2
	}
	return 1
}

// split cuts text into chunks that cost at most budget each, at the last
// line break (dropped) or space (kept) in the second half of a chunk, else
// between two characters. Nothing else is dropped.
func split(text string, budget int) []string {
	var out []string
	for text != "" {
		cost, cut, lastNL, lastSpace := 0, len(text), -1, -1
		for i, r := range text {
			c := runeCost(r)
			if cost+c > budget {
				cut = i
				break
			}
			cost += c
			switch r {
			case '\n':
				lastNL = i
			case ' ':
				lastSpace = i
			}
		}
		switch {
		case cut == len(text):
			out = append(out, text)
			text = ""
		case lastNL > 0 && lastNL >= cut/2:
			out = append(out, text[:lastNL])
			text = text[lastNL+1:]
		case lastSpace > 0 && lastSpace >= cut/2:
			out = append(out, text[:lastSpace+1])
			text = text[lastSpace+1:]
		default:
			out = append(out, text[:cut])
			text = text[cut:]
		}
	}
	return out
}

// content returns the message options that carry one part: plain text, or
// for an error a red ("danger") attachment, Slack's mark of a failure.
func content(part string, r rendered) []slack.MsgOption {
	if !r.isErr {
		return []slack.MsgOption{slack.MsgOptionText(part, false)}
	}
	fallback := r.full
	if utf8.RuneCountInString(fallback) > 150 {
		fallback = string([]rune(fallback)[:150]) + "…"
	}
	return []slack.MsgOption{slack.MsgOptionAttachments(slack.Attachment{
		Color:      "danger",
		Fallback:   "Error: " + fallback,
		Text:       part,
		MarkdownIn: []string{"text"},
	})}
}

// Send implements adapter.Conn: it posts the reply in the thread of the
// message it answers (a slash command's reply through its response_url),
// split into several messages when long, or as a file when longer still.
func (in *Input) Send(ctx context.Context, ev *chatopsv1.Event) error {
	if in.api == nil {
		return errors.New("slack: send before start")
	}
	if ev.GetTo() == "" {
		return errors.New("slack: reply without a channel (Event.to)")
	}
	// Replies to messages taken before Stop are still posted (the gateway
	// waits for them); after Stop, leave no idle connection behind.
	defer func() {
		select {
		case <-in.done:
			in.hc.CloseIdleConnections()
		default:
		}
	}()
	r := render(ev)
	if ev.GetMeta()[MetaResponseURL] != "" {
		return in.sendSlash(ctx, ev, r)
	}
	if len(r.parts) > MaxParts {
		if err := in.upload(ctx, ev.GetTo(), ev.GetThread(), r); err != nil {
			return fmt.Errorf("slack: upload reply to %s: %w", ev.GetTo(), err)
		}
		return nil
	}
	for i, part := range r.parts {
		opts := content(part, r)
		if ev.GetThread() != "" {
			opts = append(opts, slack.MsgOptionTS(ev.GetThread()))
		}
		err := in.retry(ctx, "chat.postMessage", func(ctx context.Context) error {
			_, _, err := in.api.PostMessageContext(ctx, ev.GetTo(), opts...)
			return err
		})
		if err != nil {
			return fmt.Errorf("slack: post reply part %d of %d to %s: %w", i+1, len(r.parts), ev.GetTo(), err)
		}
	}
	in.log.Debug("reply posted", "event", ev.GetInReplyTo(), "channel", ev.GetTo(), "thread", ev.GetThread(), "parts", len(r.parts))
	return nil
}

// sendSlash answers a slash command: through its response_url (visible in
// the channel with the command, or to the caller only), falling back to
// the bot token when the URL is used up or expired.
func (in *Input) sendSlash(ctx context.Context, ev *chatopsv1.Event, r rendered) error {
	meta := ev.GetMeta()
	responseURL, user := meta[MetaResponseURL], meta[MetaUser]
	ephemeral := meta[MetaResponseType] == "ephemeral"
	if !in.responseURLAllowed(responseURL) {
		in.log.Warn("slash command reply: response_url is not a Slack URL; replying with the bot token", "event", ev.GetInReplyTo())
		responseURL = ""
	}
	if len(r.parts) <= MaxParts {
		for i, part := range r.parts {
			if err := in.postSlash(ctx, ev.GetTo(), user, responseURL, ephemeral, content(part, r)); err != nil {
				return fmt.Errorf("slack: slash command reply part %d of %d: %w", i+1, len(r.parts), err)
			}
		}
		return nil
	}
	// Too long for messages: a file, in the channel or, for a reply
	// meant for the caller only, in the caller's direct message with the
	// bot.
	target := ev.GetTo()
	var err error
	if ephemeral {
		err = in.retry(ctx, "conversations.open", func(ctx context.Context) error {
			ch, _, _, err := in.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
			if err == nil {
				target = ch.ID
			}
			return err
		})
	}
	if err == nil {
		err = in.upload(ctx, target, "", r)
	}
	var note rendered
	switch {
	case err != nil:
		note = rendered{isErr: true, full: fmt.Sprintf("The reply is %d characters long, too long for Slack messages, and uploading it as a file failed (%s). Invite the bot to this channel, or ask it in a direct message.", r.chars, err)}
	case ephemeral:
		note = rendered{full: fmt.Sprintf("The reply is %d characters long: it is in your direct messages with the bot, as a file.", r.chars)}
	default:
		return nil // the file is in the channel, with its comment
	}
	note.parts = []string{slackutilsx.EscapeMessage(note.full)}
	if perr := in.postSlash(ctx, ev.GetTo(), user, responseURL, ephemeral, content(note.parts[0], note)); perr != nil {
		return errors.Join(err, fmt.Errorf("slack: slash command note: %w", perr))
	}
	if err != nil {
		return fmt.Errorf("slack: upload slash command reply: %w", err)
	}
	return nil
}

// postSlash posts one message of a slash command's reply.
func (in *Input) postSlash(ctx context.Context, channel, user, responseURL string, ephemeral bool, opts []slack.MsgOption) error {
	if responseURL != "" {
		responseType := "in_channel"
		if ephemeral {
			responseType = "ephemeral"
		}
		err := in.retry(ctx, "response_url", func(ctx context.Context) error {
			_, _, err := in.api.PostMessageContext(ctx, channel, append([]slack.MsgOption{slack.MsgOptionResponseURL(responseURL, responseType)}, opts...)...)
			return err
		})
		if err == nil {
			return nil
		}
		in.log.Info("response_url refused the reply; replying with the bot token", "channel", channel, "err", err)
	}
	if ephemeral {
		return in.retry(ctx, "chat.postEphemeral", func(ctx context.Context) error {
			_, err := in.api.PostEphemeralContext(ctx, channel, user, opts...)
			return err
		})
	}
	return in.retry(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := in.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
}

// upload posts r as a text file (a snippet) in channel, in thread if set.
func (in *Input) upload(ctx context.Context, channel, thread string, r rendered) error {
	name, title := "reply.txt", "Reply"
	comment := fmt.Sprintf("The reply is %d characters long, more than %d Slack messages hold: here it is as a file.", r.chars, MaxParts)
	if r.isErr {
		name, title = "error.txt", "Error"
		comment = fmt.Sprintf(":warning: Error: the error message is %d characters long: here it is as a file.", r.chars)
	}
	err := in.retry(ctx, "files.upload", func(ctx context.Context) error {
		_, err := in.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Filename:        name,
			Title:           title,
			Content:         r.full,
			FileSize:        len(r.full),
			SnippetType:     "text",
			Channel:         channel,
			ThreadTimestamp: thread,
			InitialComment:  comment,
		})
		return err
	})
	if err == nil {
		in.log.Debug("reply uploaded as a file", "channel", channel, "thread", thread, "chars", r.chars)
	}
	return err
}

// retry calls f until Slack stops answering 429 (waiting the Retry-After
// it asks for), at most maxAttempts times and never past ctx's deadline.
func (in *Input) retry(ctx context.Context, method string, f func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		rl, ok := errors.AsType[*slack.RateLimitedError](err)
		if !ok {
			return err
		}
		if attempt >= maxAttempts {
			return fmt.Errorf("%s: still rate limited after %d attempts: %w", method, attempt, err)
		}
		wait := max(rl.RetryAfter, time.Second)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("%s: rate limited for %s, beyond the deadline: %w", method, wait, err)
		}
		in.log.Warn("rate limited by Slack; retrying", "method", method, "retry_after", wait, "attempt", attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", method, ctx.Err())
		case <-t.C:
		}
	}
}

// responseURLAllowed reports whether u is a URL a slash command's reply may
// be posted to: an https Slack URL, or the configured API's origin. The
// URL travels through the mesh in Event.meta, so it is checked before
// anything is posted to it.
func (in *Input) responseURLAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" {
		for _, d := range []string{"slack.com", "slack-gov.com"} {
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	api, err := url.Parse(in.cfg.APIURL)
	return err == nil && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}
