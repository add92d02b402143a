// Package accounts reads the accounts file that lets one klaviyo-etl
// deployment export many Klaviyo accounts: a Kubernetes Indexed Job runs one
// pod per account, and each pod picks its entry by the completion index
// Kubernetes gives it (JOB_COMPLETION_INDEX).
//
// The file is YAML or JSON (JSON is YAML), decoded strictly: an unknown or
// misspelt key, a duplicate key or a value of the wrong type is an error, so a
// typo cannot silently fall back to a default and send two accounts into the
// same schema.
//
//	accounts:
//	  - name: acme                      # DNS label, unique
//	    api_key_file: /var/run/secrets/klaviyo-accounts/acme
//	    pg_schema: klaviyo_acme         # --sink postgres target, unique
//	    out: /data/klaviyo-export/acme  # --sink parquet target, unique, not nested
//	    budget_share: 0.5               # (0, 1]; default: run's --budget-share
//	    base_url: https://a.klaviyo.com # optional
//	    revision: 2026-07-15            # optional
//
// Every entry names pg_schema, out or both, and an entry may leave out only
// what every other entry leaves out too, so whichever sink the job runs with,
// either every account has a target of its own or the file is rejected at
// load time. Relative paths are resolved against the folder holding the file
// (as kubeconfig does), so a file means the same from any working directory.
//
// The caller (cmd/klaviyo-etl) maps an Account onto run's flags: the entry's
// api_key_file, pg_schema and out take the place of --api-key-file,
// --pg-schema and --out, and budget_share, base_url and revision, when set,
// take the place of --budget-share, --base-url and --revision. It must reject
// an entry whose target for the chosen sink is empty.
//
// The package does not read the key files (the caller does, once, and never
// logs them), does not check that they exist (a pod mounts them after the
// file is written), and does not talk to Klaviyo or to a sink.
package accounts
