package extract

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{"75/1s", Rate{75, time.Second}, false},
		{"750/1m", Rate{750, time.Minute}, false},
		{"300/10s", Rate{300, 10 * time.Second}, false},
		{" 150 / m ", Rate{150, time.Minute}, false},
		{"10/500ms", Rate{10, 500 * time.Millisecond}, false},
		{"1/1h", Rate{1, time.Hour}, false},
		{"750", Rate{}, true},
		{"0/1s", Rate{}, true},
		{"-1/1s", Rate{}, true},
		{"x/1s", Rate{}, true},
		{"75/", Rate{}, true},
		{"75/0s", Rate{}, true},
		{"75/-1s", Rate{}, true},
		{"75/fortnight", Rate{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if err == nil {
				back, err := ParseRate(got.String())
				if err != nil || back != got {
					t.Errorf("String %q does not parse back: %v %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestDefaultBudget(t *testing.T) {
	tests := []struct {
		revision      string
		fields        []string
		burst, steady Rate
	}{
		{"2026-07-15", nil, Rate{75, time.Second}, Rate{750, time.Minute}},
		{"2026-07-15.pre", []string{"subscriptions"}, Rate{75, time.Second}, Rate{750, time.Minute}},
		{"2026-07-15", []string{"subscriptions", "predictive_analytics"}, Rate{10, time.Second}, Rate{150, time.Minute}},
		{"2026-01-15", nil, Rate{75, time.Second}, Rate{750, time.Minute}},
		{"2025-10-15", nil, Rate{75, time.Second}, Rate{700, time.Minute}},
		{"2023-06-15", nil, Rate{75, time.Second}, Rate{700, time.Minute}},
		{"2024-10-15", []string{"predictive_analytics"}, Rate{10, time.Second}, Rate{150, time.Minute}},
		{"2023-02-22", nil, Rate{10, time.Second}, Rate{150, time.Minute}},
		{"2023-01-24", nil, Rate{3, time.Second}, Rate{60, time.Minute}},
		{"2022-10-17", nil, Rate{3, time.Second}, Rate{60, time.Minute}},
		{"latest", nil, Rate{75, time.Second}, Rate{750, time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.revision, func(t *testing.T) {
			b, s := DefaultBudget(tt.revision, tt.fields)
			if b != tt.burst || s != tt.steady {
				t.Errorf("got %v %v, want %v %v", b, s, tt.burst, tt.steady)
			}
		})
	}
}

func TestRateScale(t *testing.T) {
	tests := []struct {
		r     Rate
		share float64
		want  int
	}{
		{Rate{750, time.Minute}, 1, 750},
		{Rate{750, time.Minute}, 0.5, 375},
		{Rate{75, time.Second}, 0.1, 7},
		{Rate{10, time.Second}, 0.01, 1},
		{Rate{3, time.Second}, 1.0 / 3, 1},
	}
	for _, tt := range tests {
		if got := tt.r.scale(tt.share).N; got != tt.want {
			t.Errorf("%v × %v = %d, want %d", tt.r, tt.share, got, tt.want)
		}
	}
}
