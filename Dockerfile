# The control plane's image (skypanel api, skypanel worker, skypanel secrets …) for
# docker-compose.yml on a machine with a container registry. Nodes run bin/skypanel-agent on the
# host (it drives the host's Docker and nginx): see docs/operations.md.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/skypanel ./cmd/skypanel && \
    CGO_ENABLED=0 go build -trimpath -o /out/skypanel-agent ./cmd/skypanel-agent

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* && \
    useradd --system --uid 10001 --home /data skypanel && mkdir -p /data && chown skypanel /data
COPY --from=build /out/skypanel /out/skypanel-agent /usr/local/bin/
USER skypanel
WORKDIR /data
ENTRYPOINT ["skypanel"]
