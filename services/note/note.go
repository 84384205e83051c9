// Package note is the demo of command-service memory (sdk/memory): a
// conversation's notes, kept in NATS KV, that every member of the
// conversation sees and that outlive restarts.
//
//	note add TEXT   keeps TEXT
//	notes           lists the notes, numbered
//	note forget N   forgets note N
package note

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/memory"
	"github.com/botmesh/botmesh/sdk/parse"
	"github.com/nats-io/nats.go/jetstream"
)

// Name is the service's command name.
const Name = "note"

// Limits of a conversation's notes.
var Limits = memory.Limits{MaxValueBytes: 2 << 10, MaxKeys: 50}

// Handler serves note and notes.
type Handler struct {
	store *memory.Store
	now   func() time.Time
}

// New returns the handler, keeping notes through js.
func New(js jetstream.JetStream) (*Handler, error) {
	s, err := memory.New(js, Name, memory.WithLimits(memory.Conversation, Limits))
	if err != nil {
		return nil, err
	}
	return &Handler{store: s, now: time.Now}, nil
}

const usage = "note add TEXT | note forget N | notes"

// Help lists the two commands.
func (*Handler) Help(_ context.Context, _ *chatopsv1.HelpRequest, rsp *chatopsv1.HelpResponse) error {
	rsp.Usage = usage
	rsp.Description = "Notes of this conversation"
	rsp.Commands = []*chatopsv1.CommandSpec{
		{Pattern: "note", Usage: "note add TEXT | note forget N", Description: "Keeps a note for this conversation, or forgets note N"},
		{Pattern: "notes", Usage: "notes", Description: "Lists this conversation's notes"},
	}
	return nil
}

// kept is a note as the memory holds it.
type kept struct {
	Text string    `json:"text"`
	By   string    `json:"by,omitempty"`
	At   time.Time `json:"at"`
}

// Ask is the question note add without text asks; the user's next message
// is the note.
const Ask = "What should I note?"

// Exec runs note add, note forget and notes, and takes the answer to Ask.
func (h *Handler) Exec(ctx context.Context, req *chatopsv1.ExecRequest, rsp *chatopsv1.ExecResponse) error {
	if isBareAdd(req) && req.GetAnswer() == nil && req.GetConversation().GetChannel() != "" {
		rsp.Question = &chatopsv1.Question{Text: Ask, State: []byte("add")}
		return nil
	}
	out, err := h.exec(ctx, req)
	if err != nil {
		rsp.Error = err.Error()
		return nil
	}
	rsp.Result = []byte(out)
	return nil
}

// isBareAdd reports whether req is "note add" without text.
func isBareAdd(req *chatopsv1.ExecRequest) bool {
	a := req.GetArgs()
	return len(a) == 2 && strings.EqualFold(a[0], "note") && strings.EqualFold(a[1], "add")
}

func (h *Handler) exec(ctx context.Context, req *chatopsv1.ExecRequest) (string, error) {
	args := req.GetArgs()
	mem, err := h.store.Of(memory.Conversation, req)
	if err != nil {
		return "", err
	}
	if a := req.GetAnswer(); a != nil && string(a.GetState()) == "add" {
		return h.add(ctx, mem, req, strings.TrimSpace(req.GetText()))
	}
	if len(args) > 0 && strings.EqualFold(args[0], "notes") {
		return h.list(ctx, mem)
	}
	sub := ""
	if len(args) > 1 {
		sub = strings.ToLower(args[1])
	}
	switch sub {
	case "add":
		text := strings.TrimSpace(parse.AfterWords(req.GetText(), 2))
		if text == "" {
			text = strings.Join(args[2:], " ")
		}
		if text == "" {
			return "", errors.New("what should I note? Usage: note add TEXT")
		}
		return h.add(ctx, mem, req, text)
	case "forget":
		if len(args) != 3 {
			return "", errors.New("which note? Usage: note forget N (notes shows the numbers)")
		}
		return h.forget(ctx, mem, args[2])
	}
	return "", fmt.Errorf("usage: %s", usage)
}

func (h *Handler) add(ctx context.Context, mem *memory.Memory, req *chatopsv1.ExecRequest, text string) (string, error) {
	by := req.GetCaller().GetName()
	if by == "" {
		by = req.GetCaller().GetId()
	}
	b, err := json.Marshal(kept{Text: text, By: by, At: h.now().UTC()})
	if err != nil {
		return "", err
	}
	key := strconv.FormatInt(h.now().UnixNano(), 36) + "-" + req.GetConversation().GetEventId()
	if _, err := mem.Put(ctx, key, b); err != nil {
		var le *memory.LimitError
		if errors.As(err, &le) && le.What == "value" {
			return "", fmt.Errorf("that note is too long: a note is at most %d bytes with its author", le.Limit)
		}
		return "", err
	}
	keys, err := mem.Keys(ctx)
	if err != nil {
		return "noted", nil
	}
	return fmt.Sprintf("noted (note %d)", len(keys)), nil
}

func (h *Handler) list(ctx context.Context, mem *memory.Memory) (string, error) {
	keys, err := mem.Keys(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	n := 0
	for _, k := range keys {
		e, err := mem.Get(ctx, k)
		if errors.Is(err, memory.ErrNotFound) {
			continue // being forgotten
		}
		if err != nil {
			return "", err
		}
		var note kept
		if err := json.Unmarshal(e.Value, &note); err != nil {
			note.Text = string(e.Value)
		}
		n++
		fmt.Fprintf(&b, "%d. %s", n, note.Text)
		if note.By != "" {
			fmt.Fprintf(&b, " (%s)", note.By)
		}
		b.WriteByte('\n')
	}
	if n == 0 {
		return "no notes here yet (note add TEXT keeps one)", nil
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func (h *Handler) forget(ctx context.Context, mem *memory.Memory, arg string) (string, error) {
	keys, err := mem.Keys(ctx)
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(keys) {
		if len(keys) == 0 {
			return "", errors.New("there are no notes here to forget")
		}
		return "", fmt.Errorf("no note %q here: give a number from 1 to %d (notes shows them)", arg, len(keys))
	}
	e, getErr := mem.Get(ctx, keys[n-1])
	if err := mem.Delete(ctx, keys[n-1]); err != nil {
		if errors.Is(err, memory.ErrNotFound) {
			return "", fmt.Errorf("note %d was just forgotten by someone else", n)
		}
		return "", err
	}
	var note kept
	if getErr == nil && json.Unmarshal(e.Value, &note) == nil {
		return fmt.Sprintf("forgot note %d: %s", n, note.Text), nil
	}
	return fmt.Sprintf("forgot note %d", n), nil
}
