# syntax=docker/dockerfile:1
# authproxy: docker build -t authproxy:latest --build-arg VERSION="$(git describe --tags --always)" .
# The builder matches go.mod's go line; the runtime is distroless, static and non-root.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: distroless/static has no libc. Only the product module is built (test/ is excluded).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/authproxy ./cmd/authproxy \
    && mkdir -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/authproxy /authproxy
COPY examples/container/authproxy.yaml /etc/authproxy/authproxy.yaml
# Owned by nonroot so the proxy can create and rewrite its credential file; a new
# named volume is seeded with this ownership.
COPY --from=build --chown=65532:65532 /out/data /var/lib/authproxy
USER 65532:65532
VOLUME /var/lib/authproxy
# 19530: clients (gRPC and REST). 9091: /healthz, /readyz, /metrics for probes only.
EXPOSE 19530 9091
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/authproxy", "healthcheck", "--admin", "127.0.0.1:9091"]
ENTRYPOINT ["/authproxy"]
CMD ["serve", "--config", "/etc/authproxy/authproxy.yaml"]
