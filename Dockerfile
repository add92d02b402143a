# syntax=docker/dockerfile:1
#
# klaviyo-etl as a small static image: a Go builder stage, then only the
# binary on distroless/static (CA certificates, tzdata, /etc/passwd with the
# nonroot user, no shell).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t klaviyo-etl .
#   docker run --rm klaviyo-etl version
#
# BuildKit cross-compiles for --platform linux/amd64,linux/arm64 without
# emulation: the builder runs on the build machine's platform and Go targets
# the requested one.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# The image's GOTOOLCHAIN=local keeps the build on the toolchain pinned above
# instead of downloading the one go.mod might name.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=
# CGO off: a static binary that needs no libc in the final image. -trimpath
# drops build-machine paths; the build context has no .git, so VCS stamping is
# off and the commit comes from COMMIT instead.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/klaviyo-etl ./cmd/klaviyo-etl \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=
LABEL org.opencontainers.image.title="klaviyo-etl" \
      org.opencontainers.image.description="Exports Klaviyo profiles into Parquet or PostgreSQL, incrementally" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/klaviyo-etl /klaviyo-etl
# An empty /data owned by the runtime user: a named volume mounted there
# (docker-compose.yml's Parquet export) starts with this owner, so the
# non-root process can write to it.
COPY --from=build --chown=65532:65532 /out/data /data
# nonroot in distroless is 65532; numeric so Kubernetes' runAsNonRoot can
# verify it without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/klaviyo-etl"]
CMD ["run"]
