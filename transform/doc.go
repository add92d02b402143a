// Package transform turns Klaviyo Get Profiles records (JSON:API) into Arrow
// record batches for the three tables of package schema: profiles,
// profile_relationships and profile_rejects, each in exactly its table's
// ArrowSchema(). Nothing is lost: a record becomes a profile row, or a
// profile row plus reject rows, or one reject row; every reject row holds the
// whole record as received, byte for byte.
//
// It does no I/O, reads no clock and logs nothing. It does not fetch pages,
// follow links, de-duplicate profiles across records or runs, or decide
// which records belong to a run's window: the caller does, and can hand a
// record it refuses to Builder.Reject so that it is kept all the same. It
// imports only schema and libraries.
//
// # Use
//
//	b := transform.NewBuilder(mem, transform.Options{RunID: runID, ExtractedAt: fetchedAt})
//	defer b.Release()
//	res, err := b.AddPage(body) // one HTTP response body
//	if errors.Is(err, transform.ErrMalformedPage) {
//		// truncated or corrupt: nothing was added; fetch it again
//	}
//	if b.Rows() >= 10_000 {
//		recs := b.Flush()
//		err := sink.Write(ctx, load.Batch{Profiles: recs.Profiles, Relationships: recs.Relationships, Rejects: recs.Rejects})
//		recs.Release()
//	}
//
// Add takes a single record (one element of data, as received). A Builder
// is not safe for concurrent use: use one per goroutine. Builders on
// different goroutines may share one allocator (memory.NewGoAllocator() is
// safe for concurrent use): the package holds no mutable state of its own.
// Arrow memory comes from the allocator given to NewBuilder; the caller
// releases what Flush returns, and the Builder with Release.
//
// # Flattening
//
// attributes.<name> fills the profiles column of that name and
// attributes.location.<name> the column location_<name>; properties,
// subscriptions and predictive_analytics are JSON columns. Members without a
// column are not stored and are counted in Counts.UnknownFields. A member
// that appears twice keeps its last value and gets a reject row.
//
// Every member of relationships whose data is an array (or a single object)
// gives one profile_relationships row per related object, for any
// relationship name (lists, segments, push-tokens, conversations, …);
// identical entries within one record are written once; a relationship with
// links only, or data null, gives none. Rows are sorted by relationship,
// type and id.
//
// JSON columns hold canonical text, so that equal values are equal bytes:
// no insignificant white space, object members sorted by name at every
// level, strings re-encoded with the fewest escapes, and numbers exactly as
// received (1.50 stays 1.50; nothing goes through float64). U+0000 stays as
// \u0000.
//
// # Coercion
//
// Every column value is read by one named Rule (see the Rule constants):
// JSON null or an absent member is NULL; numbers and booleans in string
// columns become their JSON text (zip 10001 → "10001"); coordinates take
// numbers and numeric strings ("40.7128" → 40.7128, "" → NULL); timestamps
// take every form the API uses (2023-06-05T14:49:54+00:00, …Z, fractions,
// a space for 'T', no offset = UTC, a date alone) and become UTC
// microseconds. Strings keep U+0000 (counted in Counts.NULValues; the
// PostgreSQL sink substitutes U+FFFD, which text cannot hold).
//
// # Rejects
//
// One profile_rejects row per problem, with run_id, profile_id (NULL when
// unknown), field, error (the reason), raw (the whole record) and
// rejected_at (Options.ExtractedAt):
//
//   - a value no rule reads (an object for a coordinate or a string, an
//     unreadable date, a boolean for a timestamp): the column is NULL; field
//     is the column name (location_latitude);
//   - a lossy read: invalid UTF-8 or a lone surrogate (kept with U+FFFD), or
//     a fraction finer than a microsecond (truncated): the value is kept;
//     field is the column name;
//   - attributes, attributes.location or relationships (or one relationship)
//     not an object: field is that path (relationships.lists);
//   - a relationship entry that is not an object with non-empty string type
//     and id: no row for it; field relationships.<name>, and the error names
//     the entry (data[3]: id is a number, want a string);
//   - a record that is not a JSON object, has no non-empty string id of valid
//     UTF-8, or whose type is not "profile": no profile row at all; field is
//     NULL, "id" or "type".
//
// A member that appears more than once is reported once. Since every
// reject row holds the whole record, one record gets at most 32 of them:
// past 31, a last row (field NULL) counts the problems not listed and names
// the first.
//
// Counts keeps the cumulative figures: Records = Loaded + LoadedWithRejects
// + RejectedWhole, always.
//
// # Decoding
//
// Records are read by the package's own JSON parser (scan.go) straight into
// a typed wireRecord whose leaves are slices of the input, in one pass per
// page: the page is validated as it is read, exactly as strictly as
// encoding/json (json.Valid agrees, which FuzzAddPage checks), so a
// malformed page adds nothing. JSON columns are canonicalized in the same
// pass, as they are read. The parser sits behind one seam, recordDecoder;
// BenchmarkAddPage runs encoding/json, goccy/go-json and, with
// GOEXPERIMENT=jsonv2, encoding/json/v2 behind the same seam (typed structs
// with json.RawMessage leaves). For pages of 100 profiles of about 2 KB on
// one core the package does 357,000 profiles/s with 0.36 allocations per
// profile; with the best library (goccy/go-json) 111,000 with 53, and with
// encoding/json 17,000 with 88. So no JSON library is used.
//
// The hot paths have fast versions, each checked against the simpler code
// it stands in for, which still handles whatever the fast one refuses
// (errors, very deep nesting), so results and errors are the same: skipping
// a value (skipFast for skipSlow), canonical JSON (canonFast, which copies
// runs of text already canonical, for canonicalSlow), member names (an
// open-addressing table for the column maps), string decoding (plainText)
// and coordinates (parseDouble for strconv.ParseFloat).
package transform
