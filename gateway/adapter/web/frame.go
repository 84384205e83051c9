package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
)

// Subprotocol is the websocket subprotocol the page speaks; its version
// changes when the frames below change incompatibly.
const Subprotocol = "botmesh.web.v1"

// Frame types, browser to server.
const (
	// TypeHello opens a session: the first frame on every connection.
	TypeHello = "hello"
	// TypeMessage is a chat message from the user.
	TypeMessage = "message"
)

// Frame types, server to browser.
const (
	// TypeWelcome answers a hello: the session is open.
	TypeWelcome = "welcome"
	// TypeAck says a message reached the gateway; its reply follows.
	TypeAck = "ack"
	// TypeReply carries a reply from the mesh (kind reply, error or
	// progress).
	TypeReply = "reply"
	// TypeError reports a frame the server could not take; the connection
	// stays open unless the code is CodeUnauthorized.
	TypeError = "error"
)

// Error codes of TypeError frames.
const (
	CodeBadFrame     = "bad_frame"    // not a JSON object of a known type
	CodeTooBig       = "too_big"      // over the frame limit
	CodeEmpty        = "empty"        // a message with no text
	CodeNoHello      = "no_hello"     // a message before the hello
	CodeUnauthorized = "unauthorized" // wrong or missing token
	CodeLost         = "lost"         // replies were dropped before the tab got them; Missed says how many
	CodeStopping     = "stopping"     // the input is shutting down
	// CodeUnknownSession answers a hello whose session ticket the server
	// did not issue, or has forgotten (expired, or the server restarted):
	// no identity is given; the page says hello again without a ticket.
	CodeUnknownSession = "unknown_session"
)

// Reply kinds.
const (
	KindReply    = "reply"
	KindError    = "error"
	KindProgress = "progress"
)

// maxIDLen bounds message, session and conversation ids from the browser.
const maxIDLen = 64

// inFrame is a frame from the browser. Unknown fields are ignored, so a
// newer page can add some.
type inFrame struct {
	Type string `json:"type"`
	// Hello.
	Session      string `json:"session,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Token        string `json:"token,omitempty"`
	// Epoch and Seen say which replies of the conversation the tab has:
	// those numbered up to Seen in the conversation's Epoch.
	Epoch string `json:"epoch,omitempty"`
	Seen  uint64 `json:"seen,omitempty"`
	// Message.
	ID   string `json:"id,omitempty"`
	Text string `json:"text,omitempty"`
}

// outFrame is a frame to the browser.
type outFrame struct {
	Type string `json:"type"`
	// Welcome.
	Session      string `json:"session,omitempty"`
	User         string `json:"user,omitempty"`
	Name         string `json:"name,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Epoch        string `json:"epoch,omitempty"`
	MaxFrame     int    `json:"max_frame,omitempty"`
	// Ack, reply, error: the browser's message id it concerns.
	InReplyTo string `json:"in_reply_to,omitempty"`
	// Reply.
	ID   string `json:"id,omitempty"`
	Seq  uint64 `json:"seq,omitempty"` // number in the conversation
	Kind string `json:"kind,omitempty"`
	Text string `json:"text,omitempty"`
	Time string `json:"time,omitempty"`
	// MeshDown marks an error the gateway answered itself because the mesh
	// did not (no router, no reply in time): the page shows a banner.
	MeshDown bool `json:"mesh_down,omitempty"`
	// Error.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Missed is the number of replies a lost error stands for.
	Missed uint64 `json:"missed,omitempty"`
}

// frameError is a frame the server refuses, with the code and words the
// browser is told.
type frameError struct {
	code, msg string
	id        string // the message id, when the frame had a valid one
}

func (e *frameError) Error() string { return "web: " + e.code + ": " + e.msg }

// decodeFrame parses one text frame from the browser. It returns a
// *frameError for anything it refuses.
func decodeFrame(data []byte) (inFrame, error) {
	var f inFrame
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&f); err != nil {
		return inFrame{}, &frameError{code: CodeBadFrame, msg: "not a JSON object: " + jsonProblem(err)}
	}
	if d.More() {
		return inFrame{}, &frameError{code: CodeBadFrame, msg: "more than one JSON value in the frame"}
	}
	switch f.Type {
	case TypeHello:
		if f.Session != "" && !validID(f.Session, 2*maxIDLen) {
			return inFrame{}, &frameError{code: CodeBadFrame, msg: "malformed session"}
		}
		if f.Epoch != "" && !validID(f.Epoch, maxIDLen) {
			return inFrame{}, &frameError{code: CodeBadFrame, msg: "malformed epoch"}
		}
		if f.Conversation != "" && !validID(f.Conversation, maxIDLen) {
			return inFrame{}, &frameError{code: CodeBadFrame, msg: fmt.Sprintf("conversation must be 1 to %d letters, digits, - or _", maxIDLen)}
		}
		return f, nil
	case TypeMessage:
		if !validID(f.ID, maxIDLen) {
			return inFrame{}, &frameError{code: CodeBadFrame, msg: fmt.Sprintf("message id must be 1 to %d letters, digits, - or _", maxIDLen)}
		}
		if strings.TrimSpace(f.Text) == "" {
			return inFrame{}, &frameError{code: CodeEmpty, msg: "empty message: nothing to send", id: f.ID}
		}
		return f, nil
	case "":
		return inFrame{}, &frameError{code: CodeBadFrame, msg: `the frame has no "type"`}
	default:
		return inFrame{}, &frameError{code: CodeBadFrame, msg: fmt.Sprintf("unknown frame type %q", truncate(f.Type, 32))}
	}
}

// jsonProblem says what is wrong with a frame in a few words, without
// echoing the frame.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
		}
		return "the frame must be a JSON object"
	default:
		return "the frame is cut short"
	}
}

// validID reports whether s is 1 to max characters of [A-Za-z0-9_.-].
func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// replyFrame turns a reply event into the frame the page shows; msgID is
// the browser's id of the message answered.
func replyFrame(ev *chatopsv1.Event, msgID string) outFrame {
	f := outFrame{Type: TypeReply, ID: ev.GetId(), InReplyTo: msgID, Text: string(ev.GetData()), Kind: KindReply}
	switch ev.GetType() {
	case chatopsv1.EventType_EVENT_TYPE_ERROR:
		f.Kind = KindError
		f.MeshDown = meshDown(string(ev.GetData()))
	case chatopsv1.EventType_EVENT_TYPE_PROGRESS:
		f.Kind = KindProgress
	}
	if t := ev.GetTime(); t != nil {
		f.Time = t.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return f
}

// meshDownPrefixes start the errors the gateway answers itself when the
// mesh behind it does not answer (gateway.go: answer, timeout, toRouters).
var meshDownPrefixes = []string{
	"no router is running",
	"no reply within ",
	"could not reach the mesh",
	"no router has set up",
}

func meshDown(text string) bool {
	for _, p := range meshDownPrefixes {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return false
}

func encode(f outFrame) ([]byte, error) { return json.Marshal(f) }

// lostFrame is the error frame that tells a tab how many replies of its
// conversation were dropped from the history before it got them; the page
// shows its message as it is.
func lostFrame(n uint64) []byte {
	what := fmt.Sprintf("%d replies were dropped while you were away", n)
	if n == 1 {
		what = "1 reply was dropped while you were away"
	}
	data, _ := encode(outFrame{Type: TypeError, Code: CodeLost, Message: what, Missed: n})
	return data
}
