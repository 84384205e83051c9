package web

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeFrame feeds the decoder of browser frames anything: it must
// never panic, must refuse with one of the documented codes and a message,
// and what it accepts must be valid and survive a round trip. The seed
// corpus is in testdata/fuzz/FuzzDecodeFrame.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello"}`,
		`{"type":"hello","session":"abc.def","conversation":"tab-1","epoch":"e1","seen":3,"token":"t"}`,
		`{"type":"message","id":"m1","text":"ping"}`,
		`{"type":"message","id":"m1","text":"echo caf\u00e9\n<b>x</b>"}`,
		`{"type":"message","id":"","text":"x"}`,
		`{"type":"message","id":"m1","text":"   "}`,
		`{"type":5}`,
		`[]`, `null`, `"x"`, `{}`, `{"type":"message"`, `{"type":"hello"} {}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{CodeBadFrame: true, CodeEmpty: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			var fe *frameError
			if !errors.As(err, &fe) || !codes[fe.code] || fe.msg == "" {
				t.Fatalf("refusal %#v: want a frameError with a known code and a message", err)
			}
			if fe.id != "" && !validID(fe.id, maxIDLen) {
				t.Fatalf("refusal names invalid id %q", fe.id)
			}
			return
		}
		switch fr.Type {
		case TypeHello:
			for _, id := range []string{fr.Conversation, fr.Epoch} {
				if id != "" && !validID(id, maxIDLen) {
					t.Fatalf("accepted hello with id %q", id)
				}
			}
		case TypeMessage:
			if !validID(fr.ID, maxIDLen) || strings.TrimSpace(fr.Text) == "" {
				t.Fatalf("accepted message %+v", fr)
			}
		default:
			t.Fatalf("accepted type %q", fr.Type)
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := decodeFrame(again)
		if err != nil || fr2 != fr {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", fr, again, fr2, err)
		}
	})
}
