package schema

// Cursor column names shared by the run and the sinks.
const (
	CursorCreated = "created"
	CursorUpdated = "updated"
)

// Profiles is one row per Klaviyo profile, keyed by id.
var Profiles = &Table{
	Name: "profiles",
	Columns: []Column{
		{Name: "id", Kind: String},
		{Name: "email", Kind: String, Nullable: true},
		{Name: "phone_number", Kind: String, Nullable: true},
		{Name: "external_id", Kind: String, Nullable: true},
		{Name: "anonymous_id", Kind: String, Nullable: true},
		{Name: "first_name", Kind: String, Nullable: true},
		{Name: "last_name", Kind: String, Nullable: true},
		{Name: "organization", Kind: String, Nullable: true},
		{Name: "locale", Kind: String, Nullable: true},
		{Name: "title", Kind: String, Nullable: true},
		{Name: "image", Kind: String, Nullable: true},
		{Name: "created", Kind: Timestamp, Nullable: true},
		{Name: "updated", Kind: Timestamp, Nullable: true},
		{Name: "last_event_date", Kind: Timestamp, Nullable: true},
		{Name: "location_address1", Kind: String, Nullable: true},
		{Name: "location_address2", Kind: String, Nullable: true},
		{Name: "location_city", Kind: String, Nullable: true},
		{Name: "location_country", Kind: String, Nullable: true},
		{Name: "location_region", Kind: String, Nullable: true},
		{Name: "location_zip", Kind: String, Nullable: true},
		{Name: "location_timezone", Kind: String, Nullable: true},
		{Name: "location_ip", Kind: String, Nullable: true},
		{Name: "location_latitude", Kind: Double, Nullable: true},
		{Name: "location_longitude", Kind: Double, Nullable: true},
		{Name: "properties", Kind: JSON, Nullable: true},
		{Name: "subscriptions", Kind: JSON, Nullable: true},
		{Name: "predictive_analytics", Kind: JSON, Nullable: true},
		{Name: "_run_id", Kind: String},
		{Name: "_extracted_at", Kind: Timestamp},
	},
	PrimaryKey: []string{"id"},
	Cursors:    []string{CursorCreated, CursorUpdated},
}

// ProfileRelationships is one row per related object a profile carries in
// relationships.*.data (lists, segments, push-tokens, conversations, …).
var ProfileRelationships = &Table{
	Name: "profile_relationships",
	Columns: []Column{
		{Name: "profile_id", Kind: String},
		{Name: "relationship", Kind: String},
		{Name: "related_type", Kind: String},
		{Name: "related_id", Kind: String},
		{Name: "_run_id", Kind: String},
	},
	PrimaryKey: []string{"profile_id", "relationship", "related_type", "related_id"},
}

// ProfileRejects keeps every record, or part of a record, that could not be
// loaded as received: raw holds the record's bytes exactly, error the reason.
var ProfileRejects = &Table{
	Name: "profile_rejects",
	Columns: []Column{
		{Name: "run_id", Kind: String},
		{Name: "profile_id", Kind: String, Nullable: true},
		{Name: "field", Kind: String, Nullable: true},
		{Name: "error", Kind: String},
		{Name: "raw", Kind: Bytes},
		{Name: "rejected_at", Kind: Timestamp},
	},
}

// Tables lists every table in the order sinks create and load them.
var Tables = []*Table{Profiles, ProfileRelationships, ProfileRejects}
