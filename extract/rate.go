package extract

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is a request budget: at most N requests in any interval of length Per.
type Rate struct {
	N   int
	Per time.Duration
}

// String formats r the way ParseRate reads it, e.g. "750/1m0s".
func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.N, r.Per) }

// IsZero reports whether r is unset.
func (r Rate) IsZero() bool { return r.N == 0 && r.Per == 0 }

// perSecond is the long-run request rate r allows.
func (r Rate) perSecond() float64 { return float64(r.N) / r.Per.Seconds() }

// scale returns r with N multiplied by share, rounded down but at least 1.
func (r Rate) scale(share float64) Rate {
	n := int(float64(r.N)*share + 1e-9)
	if n < 1 {
		n = 1
	}
	return Rate{N: n, Per: r.Per}
}

// ParseRate reads "N/DUR" ("75/1s", "750/1m", "300/10s"). A bare unit
// ("750/m") means one of it.
func ParseRate(s string) (Rate, error) {
	ns, ds, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/DURATION, e.g. 750/1m", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil || n <= 0 {
		return Rate{}, fmt.Errorf("rate %q: count must be a positive integer", s)
	}
	ds = strings.TrimSpace(ds)
	if ds != "" && (ds[0] < '0' || ds[0] > '9') && ds[0] != '.' {
		ds = "1" + ds
	}
	per, err := time.ParseDuration(ds)
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: %w", s, err)
	}
	if per <= 0 {
		return Rate{}, fmt.Errorf("rate %q: duration must be positive", s)
	}
	return Rate{N: n, Per: per}, nil
}

// DefaultBudget returns Klaviyo's published Get Profiles limits for a
// revision (API-NOTES §7). Asking for predictive_analytics moves a request
// to a stricter quota. An unrecognised revision gets the newest limits:
// the API will reject it anyway.
func DefaultBudget(revision string, additionalFields []string) (burst, steady Rate) {
	date := revisionDate(revision)
	predictive := false
	for _, f := range additionalFields {
		if strings.EqualFold(strings.TrimSpace(f), "predictive_analytics") {
			predictive = true
		}
	}
	switch {
	case date == "":
		burst, steady = Rate{75, time.Second}, Rate{750, time.Minute}
	case date < "2023-02-22":
		// The 2022-10-17 and 2023-01-24 branches say 3/s, 60/m since
		// 2022-12-19 (10/s, 150/m at launch): take the lower.
		return Rate{3, time.Second}, Rate{60, time.Minute}
	case date < "2023-06-15":
		return Rate{10, time.Second}, Rate{150, time.Minute}
	case date < "2026-01-15":
		burst, steady = Rate{75, time.Second}, Rate{700, time.Minute}
	default:
		burst, steady = Rate{75, time.Second}, Rate{750, time.Minute}
	}
	if predictive {
		return Rate{10, time.Second}, Rate{150, time.Minute}
	}
	return burst, steady
}

var errRevision = errors.New("revision must look like YYYY-MM-DD or YYYY-MM-DD.suffix")

// revisionDate returns the YYYY-MM-DD part of a revision, or "" when the
// revision does not have that form.
func revisionDate(rev string) string {
	if len(rev) < 10 {
		return ""
	}
	d := rev[:10]
	for i := 0; i < 10; i++ {
		c := d[i]
		if i == 4 || i == 7 {
			if c != '-' {
				return ""
			}
			continue
		}
		if c < '0' || c > '9' {
			return ""
		}
	}
	if _, err := time.Parse("2006-01-02", d); err != nil {
		return ""
	}
	if rest := rev[10:]; rest != "" {
		if rest[0] != '.' || len(rest) == 1 {
			return ""
		}
		for _, c := range rest[1:] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return ""
			}
		}
	}
	return d
}
