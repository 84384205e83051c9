package jsonarg_test

import (
	"errors"
	"testing"

	"github.com/botmesh/botmesh/services/registry-cmd/jsonarg"
)

func TestAfter(t *testing.T) {
	for _, tc := range []struct {
		text string
		n    int
		want string
	}{
		{"register service {\"a\": 1}", 2, "{\"a\": 1}"},
		{"register   service \n {\n  \"a\":  1\n}\n", 2, "{\n  \"a\":  1\n}"},
		{"register service", 2, ""},
		{"register service ", 2, ""},
		{"query greeter Greeter.Hello {\"name\":\"Ada Lovelace\"}", 3, "{\"name\":\"Ada Lovelace\"}"},
		{"a\tb\tc", 1, "b\tc"},
		{"", 1, ""},
		{"x", 0, "x"},
	} {
		if got := jsonarg.After(tc.text, tc.n); got != tc.want {
			t.Errorf("After(%q, %d) = %q, want %q", tc.text, tc.n, got, tc.want)
		}
	}
}

func TestUnwrap(t *testing.T) {
	for in, want := range map[string]string{
		"```{\"a\":1}```":         `{"a":1}`,
		"```json\n{\"a\":1}\n```": `{"a":1}`,
		"```\n{\"a\":1}\n```":     `{"a":1}`,
		"```{\"a\":\n1}\n```":     "{\"a\":\n1}",
		"`{\"a\":1}`":             `{"a":1}`,
		`{"a":"` + "`x`" + `"}`:   `{"a":"` + "`x`" + `"}`,
		"  {\"a\":1}  ":           `{"a":1}`,
		"``":                      "",
		"```":                     "```",
		"`a` and `b`":             "`a` and `b`",
	} {
		if got := jsonarg.Unwrap(in); got != want {
			t.Errorf("Unwrap(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every malformed JSON is answered with where it is wrong, in the user's
// lines and columns.
func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"trailing comma", `{"name":"Ada",}`, "malformed JSON at line 1, column 15: invalid character '}' looking for beginning of object key string (near `name\":\"Ada\",}`)"},
		{"second line", "{\n  \"name\": Ada\n}", "malformed JSON at line 2, column 11: invalid character 'A' looking for beginning of value (near `{ \"name\": Ada }`)"},
		{"unclosed", `{"name":"Ada"`, "malformed JSON at line 1, column 14: the JSON ends too early: a closing } ] or \" is missing (near `\"name\":\"Ada\"`)"},
		{"unclosed string", `{"name":"Ada`, "malformed JSON at line 1, column 13: the JSON ends too early: a closing } ] or \" is missing (near `{\"name\":\"Ada`)"},
		{"single quotes", `{'name':'Ada'}`, "malformed JSON at line 1, column 2: invalid character '\\'' looking for beginning of object key string; JSON strings take double quotes (\") (near `{'name':'Ada'`)"},
		{"curly quotes", `{“name”:“Ada”}`, "malformed JSON at line 1, column 2: invalid character '“' looking for beginning of object key string; the text has curly quotes (“ ” ‘ ’), which JSON does not accept: your chat app may have changed them, so type straight quotes (\") or send the JSON as code (near `{“name”:“Ada”`)"},
		{"two values", `{"a":1} {"b":2}`, "malformed JSON at line 1, column 9: unexpected text after the JSON value (give one value; wrap several in [ ]) (near `{\"a\":1} {\"b\":2}`)"},
		{"not JSON", `name=Ada`, "malformed JSON at line 1, column 2: invalid character 'a' in literal null (expecting 'u') (near `name=Ada`)"},
		{"column counts characters", `{"é":"ü",}`, "malformed JSON at line 1, column 10: invalid character '}' looking for beginning of object key string (near `{\"é\":\"ü\",}`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jsonarg.Check([]byte(tc.in))
			var se *jsonarg.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SyntaxError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
	if err := jsonarg.Check([]byte("  \n ")); !errors.Is(err, jsonarg.ErrEmpty) {
		t.Errorf("blank: %v", err)
	}
	for _, ok := range []string{`{}`, ` {"a": [1, 2, {"b": null}]} `, `[1]`, `"x"`, `3`} {
		if err := jsonarg.Check([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	var v struct {
		Name  string   `json:"name"`
		Nodes []string `json:"nodes"`
	}
	err := jsonarg.Decode([]byte(`{"name":"a","nodez":[]}`), &v, true)
	var uf *jsonarg.UnknownFieldError
	if !errors.As(err, &uf) || uf.Field != "nodez" || err.Error() != `unknown field "nodez"` {
		t.Errorf("unknown field: %v", err)
	}
	err = jsonarg.Decode([]byte("{\"name\": 5}"), &v, true)
	if err == nil || err.Error() != "malformed JSON at line 1, column 10: field name should be a string, not number (near `{\"name\": 5}`)" {
		t.Errorf("wrong type: %v", err)
	}
	err = jsonarg.Decode([]byte("{\"name\": \"a\", \"nodes\": {}}"), &v, true)
	if err == nil || err.Error() != "malformed JSON at line 1, column 24: field nodes should be a list [ ], not object (near `\", \"nodes\": {}}`)" {
		t.Errorf("wrong type: %v", err)
	}
}
