# Images of smokemon's two binaries (docker-compose.yml builds both):
#   docker build --target exporter -t smokemon/exporter .
#   docker build --target analyzer -t smokemon/analyzer .
# Static Go binaries (CGO off), run as a non-root user.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION}" \
        -o /out/smokemon_exporter ./cmd/smokemon_exporter && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION}" \
        -o /out/smokemon_analyzer ./cmd/smokemon_analyzer

# The exporter needs iperf3 for its bandwidth probe, so a slim Debian rather
# than scratch. A non-root process only gets CAP_NET_RAW (raw ICMP for ping
# and mtr) from a file capability; the container must still be granted it
# (cap_add: NET_RAW).
FROM debian:12-slim AS exporter
RUN apt-get update && apt-get install -y --no-install-recommends iperf3 ca-certificates libcap2-bin && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --no-create-home --uid 9917 smokemon
COPY --from=build /out/smokemon_exporter /usr/local/bin/smokemon_exporter
RUN setcap cap_net_raw=+ep /usr/local/bin/smokemon_exporter
USER smokemon
EXPOSE 9917
ENTRYPOINT ["/usr/local/bin/smokemon_exporter"]

# The analyzer only talks HTTP to Prometheus: nothing but the binary.
FROM gcr.io/distroless/static-debian12:nonroot AS analyzer
COPY --from=build /out/smokemon_analyzer /smokemon_analyzer
EXPOSE 9918
ENTRYPOINT ["/smokemon_analyzer"]
