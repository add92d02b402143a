// Package klaviyosim is an in-process simulator of Klaviyo's
// GET /api/profiles, used like net/http/httptest: by tests, and by the
// simulate and demo commands.
//
// It serves a deterministic synthetic account (a pure function of
// Config.Seed, Config.Profiles, Config.Start and Config.End) the way the
// real API does, as far as API-NOTES.md documents it:
//
//   - auth (Authorization: Klaviyo-API-Key …; 401 for a missing or unknown
//     key, 403 for Config.NoScopeKey) and the required revision header
//     (every revision from 2022-10-17 to 2026-07-15, optionally ".pre";
//     anything else is a 400);
//   - keyset pagination with opaque, HMAC-sealed cursors, page[size] 1..100,
//     links.self / prev / next as absolute URLs carrying the whole query;
//   - sort on id, created, updated and email (ascending or "-"), ties broken
//     by id; many profiles share a created second (bulk imports);
//   - the filter grammar: equals/any on id, email, phone_number,
//     external_id; greater-than/less-than on created and updated with
//     unquoted datetimes (a '+' decoded to a space fails like a real parse
//     error); and(...) or commas;
//   - fields[profile] sparse fieldsets, additional-fields[profile]
//     (subscriptions, predictive_analytics), include per revision,
//     relationships in each revision's shape;
//   - the account's budgets as sliding windows, RateLimit-* headers, 429 with
//     Retry-After, a separate lower budget for predictive_analytics;
//   - latency with jitter, injected faults (5xx, connection reset, truncated
//     body, invalid JSON, hang, spurious 429), gzip when accepted.
//
// Records are rendered by appending into pooled buffers from a 64-byte
// stored record per profile; a million profiles build in well under a
// second.
//
// It does not: implement any other endpoint, filter or sort on
// subscriptions.* fields (400 with a message saying so), compute real
// segment membership, persist anything, or speak HTTP/2. Whatever API-NOTES
// marks UNCONFIRMED is simulated one plausible way: a missing sort means
// sort=id; null e-mails sort first; unknown query parameters are a 400.
//
// A test walks the API over real HTTP:
//
//	sim, err := klaviyosim.NewServer(klaviyosim.Config{Profiles: 5000, Seed: 1})
//	if err != nil {
//		t.Fatal(err)
//	}
//	defer sim.Close()
//	sim.InjectFaults(klaviyosim.Fault503, 1) // the first request fails
//
//	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
//		sim.URL()+"/api/profiles?sort=created&page%5Bsize%5D=100", nil)
//	req.Header.Set("Authorization", "Klaviyo-API-Key pk_test")
//	req.Header.Set("revision", "2026-07-15")
//	// … follow links.next until it is absent …
//
//	c := sim.Counters() // requests, statuses, faults, MaxBurst, MaxSteady
//
// Test hooks (AddProfiles, UpdateProfiles, Profiles, InjectFaults,
// SetFaultRate, SetRateLimits, ConsumeBudget, Use) are safe to call while
// requests are being served. Profile.JSON renders exactly the record the
// server puts in data[].
package klaviyosim
