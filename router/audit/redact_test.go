package audit

import "testing"

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		text      string
		positions []uint32
		from      int
		want      string
	}{
		{"login alice hunter2", []uint32{2}, -1, "login alice [redacted]"},
		{"login alice hunter2", nil, -1, "login alice hunter2"},
		{"rotate token  deploy\thunter2\nmore", []uint32{3}, -1, "rotate token  deploy\t[redacted]\nmore"},
		{"login alice", []uint32{2, 7}, -1, "login alice"},
		{"login alice hunter2 again", nil, 1, "login [redacted] [redacted] [redacted]"},
		{"login", nil, 1, "login"},
		{"  login  a b ", []uint32{1}, 2, "  login  [redacted] [redacted] "},
		{"", []uint32{0}, -1, ""},
		{"mot de passe: ça❤va", []uint32{3}, -1, "mot de passe: [redacted]"},
	} {
		if got := Redact(tc.text, tc.positions, tc.from); got != tc.want {
			t.Errorf("Redact(%q, %v, %d) = %q, want %q", tc.text, tc.positions, tc.from, got, tc.want)
		}
	}
}
