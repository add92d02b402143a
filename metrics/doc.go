// Package metrics turns a run's summary into Prometheus metrics: an
// OpenMetrics text file for node_exporter's textfile collector, and a push to
// a Prometheus Pushgateway. Both are written once, at the end of a run, so a
// batch job that lives for minutes is still visible to Prometheus.
//
// It does not serve an HTTP endpoint: a CronJob is gone before a scrape.
package metrics
