// Package deploy holds no code: it is where the tests of klaviyo-etl's
// deployment files live. They decode every Kubernetes manifest under
// deploy/kubernetes strictly into the Kubernetes API types, and
// docker-compose.yml into a typed subset of the Compose format, so that a
// misspelt key fails CI instead of being ignored by the cluster; then they
// check the settings that matter (no overlapping runs, non-root read-only
// containers, keys read from mounted files, flags and environment variables
// that the command's contract defines, an accounts file that loads).
//
// The tests do not talk to a cluster or a Docker engine, and they do not
// build the image; Dockerfile and .dockerignore are checked by reading them.
package deploy
