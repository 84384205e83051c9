package natstransport

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"go-micro.dev/v4/transport"
)

// The wire form must be what go-micro's NATS transport plugin writes and
// reads: encoding/json of a transport.Message (its default codec,
// go-micro.dev/v4/codec/json, calls json.Marshal and json.Unmarshal for
// anything that is not a proto message).

// frameMessages are messages with the headers and bodies that need care.
var frameMessages = []struct {
	name string
	m    transport.Message
}{
	{"empty", transport.Message{}},
	{"nil header, body", transport.Message{Body: []byte("hello")}},
	{"empty header, empty body", transport.Message{Header: map[string]string{}, Body: []byte{}}},
	{"go-micro request", transport.Message{
		Header: map[string]string{
			"Content-Type":   "application/protobuf",
			"Accept":         "application/protobuf",
			"Micro-Id":       "42",
			"Micro-Service":  "go.micro.bot.echo",
			"Micro-Endpoint": "Command.Exec",
			"Micro-Method":   "Command.Exec",
			"Timeout":        "5000000000",
		},
		Body: []byte{0x0a, 0x04, 'e', 'c', 'h', 'o', 0x22, 0x02, 'h', 'i'},
	}},
	{"quotes and backslashes", transport.Message{Header: map[string]string{
		`say "hi"`: `C:\path\to "x"`,
		`\`:        `"`,
		`\u0041`:   `\n is not a newline`,
	}}},
	{"unicode", transport.Message{Header: map[string]string{
		"Grüße":  "日本語 🤖",
		"emoji":  "👍🏽",
		"ls":     "a\u2028b\u2029c",
		"bom":    "\ufeff",
		"max":    "\U0010ffff",
		"arabic": "مرحبا",
	}}},
	{"control characters", transport.Message{Header: map[string]string{
		"ctl":   "\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
		"crlf":  "line one\r\nline two",
		"tab\t": "key with a tab",
	}}},
	{"html characters", transport.Message{Header: map[string]string{"<script>": "a && b > c < d"}}},
	{"binary body", transport.Message{
		Header: map[string]string{"Content-Type": "application/octet-stream"},
		Body:   []byte{0, 1, 2, 0xff, 0xfe, '"', '\\', '\n', 0x80, 0xc0},
	}},
	{"body of every length mod 3", transport.Message{Body: []byte("ab")}},
	{"empty key and value", transport.Message{Header: map[string]string{"": ""}}},
	{"long", transport.Message{
		Header: map[string]string{"Micro-Error": strings.Repeat(`{"id":"x","detail":"y"}`, 300)},
		Body:   bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 10000),
	}},
}

// jsonDecode is what the plugin does with a frame.
func jsonDecode(t testing.TB, data []byte) transport.Message {
	t.Helper()
	var m transport.Message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", data, err)
	}
	return m
}

func TestAppendFrameIsJSONOfMessage(t *testing.T) {
	for _, tc := range frameMessages {
		t.Run(tc.name, func(t *testing.T) {
			b := appendFrame(nil, &tc.m)
			if !json.Valid(b) {
				t.Fatalf("not valid JSON: %q", b)
			}
			if got := jsonDecode(t, b); !reflect.DeepEqual(got, tc.m) {
				t.Errorf("encoding/json reads\n%#v\nwant\n%#v", got, tc.m)
			}
			// Header order aside (map iteration), the bytes are
			// encoding/json's.
			want, err := json.Marshal(&tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.m.Header) <= 1 && !bytes.Equal(b, want) {
				t.Errorf("appendFrame wrote\n%s\nencoding/json writes\n%s", b, want)
			}
			if len(b) != len(want) {
				t.Errorf("appendFrame wrote %d bytes, encoding/json %d:\n%s\n%s", len(b), len(want), b, want)
			}
		})
	}
}

func TestAppendFrameAppends(t *testing.T) {
	m := transport.Message{Header: map[string]string{"a": "b"}, Body: []byte("c")}
	b := appendFrame([]byte("prefix"), &m)
	if got, want := string(b), `prefix{"Header":{"a":"b"},"Body":"Yw=="}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestAppendFrameInvalidUTF8 checks that invalid UTF-8 in headers is
// replaced as encoding/json replaces it, so both sides read the same.
func TestAppendFrameInvalidUTF8(t *testing.T) {
	for _, s := range []string{"\xff", "a\xc0b", "\xed\xa0\x80", "ok\xe2\x82", "\xf4\x90\x80\x80"} {
		m := transport.Message{Header: map[string]string{"k" + s: s}}
		got := appendFrame(nil, &m)
		want, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("header %q: appendFrame wrote %s, encoding/json %s", s, got, want)
		}
	}
}

func TestReadFrameRoundTrip(t *testing.T) {
	for _, tc := range frameMessages {
		t.Run(tc.name, func(t *testing.T) {
			var got transport.Message
			if err := readFrame(appendFrame(nil, &tc.m), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Errorf("read\n%#v\nwant\n%#v", got, tc.m)
			}
		})
	}
}

// TestReadFrameReadsEncodingJSON reads what the plugin writes, and JSON
// written by others (whitespace, escapes, other key spellings, key order),
// as encoding/json reads it.
func TestReadFrameReadsEncodingJSON(t *testing.T) {
	var docs []string
	for _, tc := range frameMessages {
		b, err := json.Marshal(&tc.m)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
		b, err = json.MarshalIndent(&tc.m, " ", "\t")
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	docs = append(docs,
		`{}`,
		`null`,
		`{"Header":null,"Body":null}`,
		`{"Body":"aGk=","Header":{"a":"b"}}`,
		`{"header":{"a":"b"},"body":"aGk="}`,
		`{"HEADER":{"a":"b"}}`,
		`{"Header":{"a":"1"},"header":{"b":"2"}}`,
		`{"Header":{"a":"1","a":"2"}}`,
		`{"Body":"aGk=","Body":null}`,
		`{"Header":{"\u0041":"\ud83e\udd16\n\/"}}`,
		`{"Header":{"a":"\ud800"}}`,
		"{\"Header\":{\"\xff\":\"\xfe\"}}",
		` {"Header":{"a":"b"}} `,
		`{"Header":{"a":"b"},"Unknown":[1,2,{"x":null}],"Body":""}`,
		`{"Header":{"a":null}}`,
		`{"Body":"aGk\u003d"}`,
		`{"Body":"aGk\r\n="}`,
		"{\"Header\":{\"del\":\"\x7f\"}}",
	)
	for _, d := range docs {
		want := jsonDecode(t, []byte(d))
		var got transport.Message
		if err := readFrame([]byte(d), &got); err != nil {
			t.Errorf("readFrame(%q): %v", d, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("readFrame(%q) =\n%#v\nencoding/json:\n%#v", d, got, want)
		}
	}
}

func TestReadFrameMalformed(t *testing.T) {
	for _, d := range []string{
		``,
		` `,
		`{`,
		`}`,
		`[]`,
		`"Header"`,
		`1`,
		`{"Header"}`,
		`{"Header":}`,
		`{"Header":{"a":"b"}`,
		`{"Header":{"a":"b",}}`,
		`{"Header":{"a":"b"},}`,
		`{"Header":{"a":"b"}}x`,
		`{"Header":{"a":"b"}}{}`,
		`{"Header":{"a":1}}`,
		`{"Header":{"a"}}`,
		`{"Header":{"a":"b}}`,
		`{"Header":nul}`,
		`{"Header":nullx}`,
		`{"Header":[]}`,
		`{"Header":"x"}`,
		`{"Body":"a"}`,
		`{"Body":"!!!!"}`,
		`{"Body":"aGk="`,
		`{"Body":"aGk=}`,
		`{"Body":1}`,
		`{"Body":"aGk=\"}`,
		"{\"Body\":\"aGk\n=\"}",
		"{\"Body\":\"aGk\r\n=\"}",
		"{\"Body\":\"\taGk=\"}",
		"{\"Header\":{\"a\":\"b\nc\"}}",
		"{\"Header\":{\"a\":\"\x00\"}}",
		`{"Header":{"a":"\x"}}`,
		`{"Header":{"a":"\u12"}}`,
	} {
		orig := transport.Message{Header: map[string]string{"keep": "me"}, Body: []byte("body")}
		m := transport.Message{Header: map[string]string{"keep": "me"}, Body: []byte("body")}
		if err := readFrame([]byte(d), &m); err == nil {
			t.Errorf("readFrame(%q) accepted it: %#v", d, m)
		} else if json.Unmarshal([]byte(d), new(transport.Message)) == nil {
			t.Errorf("readFrame(%q) = %v, but encoding/json accepts it", d, err)
		}
		if !reflect.DeepEqual(m, orig) {
			t.Errorf("readFrame(%q) failed but changed the message: %#v", d, m)
		}
	}
}

// TestReadFrameMerges checks the documented contract: headers are added to
// m.Header, a missing or null Header or Body leaves m's as they were.
func TestReadFrameMerges(t *testing.T) {
	for _, d := range []string{
		`{"Header":{"b":"2","c":"3"}}`,
		`{"Header": {"b": "2", "c": "3"}}`, // encoding/json's path
	} {
		m := transport.Message{Header: map[string]string{"a": "1", "b": "old"}, Body: []byte("kept")}
		if err := readFrame([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		want := transport.Message{Header: map[string]string{"a": "1", "b": "2", "c": "3"}, Body: []byte("kept")}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("readFrame(%s) = %#v, want %#v", d, m, want)
		}
	}
	for _, d := range []string{`{"Header":null,"Body":"eA=="}`, `{"Header" : null, "Body" : "eA=="}`} {
		m := transport.Message{Header: map[string]string{"a": "1"}}
		if err := readFrame([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		want := transport.Message{Header: map[string]string{"a": "1"}, Body: []byte("x")}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("readFrame(%s) = %#v, want %#v", d, m, want)
		}
	}
}

// TestReadFrameDoesNotAlias checks that a message read does not share
// memory with the NATS message it came from, which nats.go may reuse.
func TestReadFrameDoesNotAlias(t *testing.T) {
	for _, d := range []string{`{"Header":{"k":"v"},"Body":"aGk="}`, `{"Header":{"k":"v"},"Body":"aGk=" }`} {
		data := []byte(d)
		var m transport.Message
		if err := readFrame(data, &m); err != nil {
			t.Fatal(err)
		}
		for i := range data {
			data[i] = 'X'
		}
		if m.Header["k"] != "v" || string(m.Body) != "hi" {
			t.Errorf("after overwriting the input, read %#v", m)
		}
	}
}

// small reports whether m makes a good seed: the fuzzer minimizes every
// new input it finds, which takes it minutes for one of tens of kilobytes.
func small(m transport.Message) bool {
	return len(appendFrame(nil, &m)) < 1024
}

// frameSeeds are the seed corpus of FuzzReadFrame.
func frameSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, tc := range frameMessages {
		if !small(tc.m) {
			continue
		}
		b, err := json.Marshal(&tc.m)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b, appendFrame(nil, &tc.m))
	}
	for _, s := range []string{
		``, `null`, `{}`, `{"Header":{},"Body":""}`, `{"Header":null}`,
		`{"header":{"A":"b"}}`, ` {"Body":"aGk="}`, `{"Body":"aGk\r\n="}`,
		"{\"Body\":\"aGk\n=\"}", `{"Header":{"a":"\u00e9"}}`, `{"Header":{"a":1}}`,
		`{"Body":"aGk=","Body":"aGk="}`, `{"Header":{"a":"b"}}x`, `{"Body":"YQ"}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzReadFrame checks readFrame against encoding/json: what encoding/json
// accepts, readFrame reads the same; what it rejects, readFrame rejects,
// leaving the message as it was; and it never panics.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want transport.Message
		jerr := json.Unmarshal(data, &want)
		var got transport.Message
		err := readFrame(data, &got)
		switch {
		case jerr == nil && err != nil:
			t.Fatalf("readFrame(%q): %v; encoding/json reads %#v", data, err, want)
		case jerr != nil && err == nil:
			t.Fatalf("readFrame(%q) = %#v; encoding/json rejects it: %v", data, got, jerr)
		case jerr == nil && !reflect.DeepEqual(got, want):
			t.Fatalf("readFrame(%q) =\n%#v\nencoding/json:\n%#v", data, got, want)
		case err != nil && !reflect.DeepEqual(got, transport.Message{}):
			t.Fatalf("readFrame(%q) failed (%v) but changed the message: %#v", data, err, got)
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzFrameRoundTrip checks that what appendFrame writes is valid JSON
// that encoding/json (the plugin) and readFrame read as the message (with
// invalid UTF-8 replaced, as encoding/json replaces it), and, with one
// header, that it is byte for byte what encoding/json writes.
func FuzzFrameRoundTrip(f *testing.F) {
	for _, tc := range frameMessages {
		if !small(tc.m) {
			continue
		}
		for k, v := range tc.m.Header {
			f.Add(k, v, "", "", tc.m.Body, tc.m.Body == nil)
		}
		f.Add("", "", "", "", tc.m.Body, tc.m.Body == nil)
	}
	f.Add("Micro-Error", `{"id":"go.micro.client","code":408}`, "Content-Type", "application/json", []byte(`{"a":1}`), false)
	f.Add("\xff", "a\xc0b", "\u2028", "\b\f", []byte{}, false)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, body []byte, nilBody bool) {
		m := transport.Message{Body: body}
		if nilBody {
			m.Body = nil
		} else if m.Body == nil {
			m.Body = []byte{}
		}
		if k1 != "" || v1 != "" {
			m.Header = map[string]string{k1: v1}
		}
		one := true
		if k2 != "" && k2 != k1 && jsonString(k2) == jsonString(k1) {
			// Two keys that encoding/json writes alike ("\xff" and
			// "\xfe" both become "\ufffd"): which value a reader keeps
			// depends on map order, for encoding/json as for appendFrame.
			t.Skip("keys equal once invalid UTF-8 is replaced")
		}
		if k2 != "" {
			if m.Header == nil {
				m.Header = map[string]string{}
			}
			m.Header[k2] = v2
			one = len(m.Header) == 1
		}
		b := appendFrame(nil, &m)
		if !json.Valid(b) {
			t.Fatalf("appendFrame(%#v) is not valid JSON: %q", m, b)
		}
		jb, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if one && !bytes.Equal(b, jb) {
			t.Fatalf("appendFrame wrote\n%q\nencoding/json writes\n%q", b, jb)
		}
		if len(b) != len(jb) {
			t.Fatalf("appendFrame wrote %d bytes, encoding/json %d:\n%q\n%q", len(b), len(jb), b, jb)
		}
		want := jsonDecode(t, jb) // the message, invalid UTF-8 replaced
		if got := jsonDecode(t, b); !reflect.DeepEqual(got, want) {
			t.Fatalf("encoding/json reads\n%#v\nwant\n%#v", got, want)
		}
		var got transport.Message
		if err := readFrame(b, &got); err != nil {
			t.Fatalf("readFrame(%q): %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("readFrame reads\n%#v\nwant\n%#v", got, want)
		}
	})
}
