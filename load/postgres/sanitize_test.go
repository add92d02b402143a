package postgres

import "testing"

func TestSanitizer(t *testing.T) {
	tests := []struct {
		name, in, wantText, wantJSON string
		changed                      bool
	}{
		{"clean", `{"a":"b"}`, `{"a":"b"}`, `{"a":"b"}`, false},
		{"empty", "", "", "", false},
		{"raw NUL", "a\x00b", "a\uFFFDb", "a\uFFFDb", true},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb", "a\uFFFDb", true},
		{"NUL escape", `{"a":"x\u0000y"}`, `{"a":"x\u0000y"}`, `{"a":"x\ufffdy"}`, true},
		{"escaped backslash then u0000", `{"a":"\\u0000"}`, `{"a":"\\u0000"}`, `{"a":"\\u0000"}`, false},
		{"escaped backslash then NUL escape", `"\\\u0000"`, `"\\\u0000"`, `"\\\ufffd"`, true},
		{"other escapes", `"\n\u0001\"\u0000"`, `"\n\u0001\"\u0000"`, `"\n\u0001\"\ufffd"`, true},
		{"trailing backslash", `\`, `\`, `\`, false},
		{"key escape", `{"\u0000":1}`, `{"\u0000":1}`, `{"\ufffd":1}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var z sanitizer
			if got := z.json(tt.in); got != tt.wantJSON {
				t.Errorf("json(%q) = %q, want %q", tt.in, got, tt.wantJSON)
			}
			if (z.replaced == 1) != tt.changed {
				t.Errorf("json counted %d changes, want changed=%v", z.replaced, tt.changed)
			}
			var y sanitizer
			if got := y.text(tt.in); got != tt.wantText {
				t.Errorf("text(%q) = %q, want %q", tt.in, got, tt.wantText)
			}
		})
	}
}

func FuzzSanitizer(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, "\x00", `\\u0000`, "\xff", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var z sanitizer
		for _, out := range []string{z.text(s), z.json(s)} {
			for i := 0; i < len(out); i++ {
				if out[i] == 0 {
					t.Fatalf("NUL left in %q", out)
				}
			}
		}
		if got := z.json(s); containsNULEscape(got) {
			t.Fatalf("\\u0000 escape left in %q", got)
		}
	})
}

// containsNULEscape reports a \u0000 that is an escape, not text after an
// escaped backslash.
func containsNULEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			continue
		}
		if s[i+1] == 'u' && len(s) >= i+6 && s[i+2:i+6] == "0000" {
			return true
		}
		i++
	}
	return false
}
