// Command klaviyo-etl exports every Klaviyo profile into Parquet or
// PostgreSQL, incrementally, as fast as the account's API budget allows.
//
// Commands:
//
//	klaviyo-etl run       export new (and, with --cursor-field updated, edited) profiles
//	klaviyo-etl migrate   apply pending PostgreSQL migrations
//	klaviyo-etl state     print the committed state as JSON
//	klaviyo-etl simulate  serve a simulated Klaviyo API (for tests and trials)
//	klaviyo-etl demo      export a simulated account twice, without a key or a server
//	klaviyo-etl version   print version, commit and Go version
//
// run flags, each also read from the environment variable in brackets:
//
//	--api-key (KLAVIYO_API_KEY)            --api-key-file (KLAVIYO_API_KEY_FILE)
//	--base-url (KLAVIYO_BASE_URL)          --revision (KLAVIYO_REVISION, 2026-07-15)
//	--sink parquet|postgres                --out DIR (./klaviyo-export)
//	--database-url (DATABASE_URL)          --pg-schema (klaviyo)
//	--page-size (100)                      --rate-burst N/DUR, --rate-steady N/DUR
//	--concurrency N|auto                   --since TIME, --until TIME
//	--full-refresh                         --lookback DUR (10m)
//	--cursor-field created|updated         --additional-fields LIST, --include LIST
//	--log-level, --log-format json|console|auto, --progress auto|always|never
//	--request-timeout DUR, --retry-deadline DUR, --budget-share F, --dry-run, --no-migrate
//	--metrics-file PATH, --metrics-push-url URL
//	--checkpoint-rows N, --checkpoint-interval DUR, --compression zstd|snappy|gzip|none
//	--accounts-file PATH, --account NAME (one entry of a multi-account fan-out;
//	by default the entry at JOB_COMPLETION_INDEX)
//
// Flags other than those of the contract read KLAVIYO_ETL_<FLAG> variables;
// `klaviyo-etl run -h` lists them all.
//
// simulate flags: --addr HOST:PORT, --api-key KEY (pk_test), --profiles N,
// --seed N, --latency DUR, --rate-burst, --rate-steady, --fault-rate P.
//
// Exit codes: 0 success; 1 run failed (state not advanced past what is
// durable); 2 usage or configuration error; 3 another run holds the lock for
// this target; 130/143 interrupted by SIGINT/SIGTERM after a clean
// checkpoint.
package main
