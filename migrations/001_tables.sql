-- Tables of record: columns, order and types follow package schema exactly
-- (schema.Profiles, schema.ProfileRelationships, schema.ProfileRejects).

CREATE TABLE {{.schema}}.profiles (
    id                   text NOT NULL,
    email                text,
    phone_number         text,
    external_id          text,
    anonymous_id         text,
    first_name           text,
    last_name            text,
    organization         text,
    locale               text,
    title                text,
    image                text,
    created              timestamptz,
    updated              timestamptz,
    last_event_date      timestamptz,
    location_address1    text,
    location_address2    text,
    location_city        text,
    location_country     text,
    location_region      text,
    location_zip         text,
    location_timezone    text,
    location_ip          text,
    location_latitude    double precision,
    location_longitude   double precision,
    properties           jsonb,
    subscriptions        jsonb,
    predictive_analytics jsonb,
    _run_id              text NOT NULL,
    _extracted_at        timestamptz NOT NULL,
    CONSTRAINT profiles_pkey PRIMARY KEY (id)
);

CREATE INDEX profiles_created_idx ON {{.schema}}.profiles (created);
CREATE INDEX profiles_updated_idx ON {{.schema}}.profiles (updated);
CREATE INDEX profiles_email_idx ON {{.schema}}.profiles (email);

CREATE TABLE {{.schema}}.profile_relationships (
    profile_id   text NOT NULL,
    relationship text NOT NULL,
    related_type text NOT NULL,
    related_id   text NOT NULL,
    _run_id      text NOT NULL,
    CONSTRAINT profile_relationships_pkey PRIMARY KEY (profile_id, relationship, related_type, related_id)
);

CREATE INDEX profile_relationships_related_idx ON {{.schema}}.profile_relationships (relationship, related_id);

CREATE VIEW {{.schema}}.profile_lists AS
    SELECT profile_id, related_id AS list_id
    FROM {{.schema}}.profile_relationships
    WHERE relationship = 'lists';

CREATE VIEW {{.schema}}.profile_segments AS
    SELECT profile_id, related_id AS segment_id
    FROM {{.schema}}.profile_relationships
    WHERE relationship = 'segments';

-- reject_id is the one column beyond schema.ProfileRejects: rejects have no
-- natural key, and a surrogate one lets them be referenced and paged.
CREATE TABLE {{.schema}}.profile_rejects (
    run_id      text NOT NULL,
    profile_id  text,
    field       text,
    error       text NOT NULL,
    raw         bytea NOT NULL,
    rejected_at timestamptz NOT NULL,
    reject_id   bigint GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT profile_rejects_pkey PRIMARY KEY (reject_id)
);

CREATE INDEX profile_rejects_run_id_idx ON {{.schema}}.profile_rejects (run_id);

-- One row per target: the State a run committed, as JSON, plus copies of
-- what people query for. commit_id identifies the transaction that wrote
-- the row, so a sink whose COMMIT lost its connection can tell whether it
-- landed.
CREATE TABLE {{.schema}}.etl_state (
    key                text NOT NULL,
    state              jsonb NOT NULL,
    schema_version     integer NOT NULL,
    window_end_created timestamptz,
    window_end_updated timestamptz,
    commit_id          text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_state_pkey PRIMARY KEY (key)
);

-- One row per run, updated at each of its commits.
CREATE TABLE {{.schema}}.etl_runs (
    run_id           text NOT NULL,
    target           text NOT NULL,
    started_at       timestamptz,
    ended_at         timestamptz,
    status           text NOT NULL,
    cursor_field     text NOT NULL,
    full_refresh     boolean NOT NULL DEFAULT false,
    window_start     timestamptz,
    window_end       timestamptz,
    records          bigint NOT NULL DEFAULT 0,
    profiles         bigint NOT NULL DEFAULT 0,
    relationships    bigint NOT NULL DEFAULT 0,
    rejects          bigint NOT NULL DEFAULT 0,
    rejected_records bigint NOT NULL DEFAULT 0,
    pages            bigint NOT NULL DEFAULT 0,
    requests         bigint NOT NULL DEFAULT 0,
    retries          bigint NOT NULL DEFAULT 0,
    rate_limited     bigint NOT NULL DEFAULT 0,
    duplicates       bigint NOT NULL DEFAULT 0,
    nul_replaced     bigint NOT NULL DEFAULT 0,
    error            text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_runs_pkey PRIMARY KEY (run_id)
);

CREATE INDEX etl_runs_started_at_idx ON {{.schema}}.etl_runs (started_at);
