package klaviyosim

import "strings"

// Revisions lists the revision dates the simulator accepts (API-NOTES §2);
// each is also accepted with the ".pre" suffix.
var Revisions = []string{
	"2022-10-17", "2023-01-24", "2023-02-22", "2023-06-15", "2023-07-15", "2023-08-15",
	"2023-09-15", "2023-10-15", "2023-12-15", "2024-02-15", "2024-05-15", "2024-06-15",
	"2024-07-15", "2024-10-15", "2025-01-15", "2025-04-15", "2025-07-15", "2025-10-15",
	"2026-01-15", "2026-04-15", "2026-07-15",
}

const newestRevision = "2026-07-15"

type revision struct {
	name string // as sent, e.g. "2026-07-15.pre"
	date string // without suffix
}

func parseRevision(s string) (revision, bool) {
	date, suffix, hasSuffix := strings.Cut(s, ".")
	if hasSuffix && suffix != "pre" {
		return revision{}, false
	}
	if !contains(Revisions, date) {
		return revision{}, false
	}
	return revision{name: s, date: date}, true
}

// atLeast compares ISO dates, which order lexically.
func (r revision) atLeast(date string) bool { return r.date >= date }

// includes returns the include= values the revision accepts (API-NOTES §5).
func (r revision) includes() []string {
	switch {
	case r.atLeast("2026-07-15"):
		return []string{"conversations", "push-tokens"}
	case r.atLeast("2026-04-15"):
		return []string{"conversation", "push-tokens"}
	case r.atLeast("2026-01-15"):
		return []string{"push-tokens"}
	case r.atLeast("2025-04-15"):
		return []string{"lists", "push-tokens", "segments"}
	}
	return nil
}

// mediaType is what the revision's spec declares for responses.
func (r revision) mediaType() string {
	if r.atLeast("2024-10-15") {
		return "application/vnd.api+json"
	}
	return "application/json"
}
