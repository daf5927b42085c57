# replog: one static binary in an otherwise empty image.
#
#   docker build -t replog:local .
#   docker run -e ROLE=sentinel -p 8080:8080 replog:local
#
# With no registry reachable, run scripts/docker-base-images.sh first: it
# makes the golang image below from this machine's Go toolchain. The build
# stage's RUN steps only use what a busybox shell has.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
# Marks the build stage, which stays behind as an untagged image (the build
# cache); remove those with: docker image prune -f --filter label=org.replog.stage=build
LABEL org.replog.stage=build
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/replog ./cmd/replog
# The data folder and a /tmp, both empty, for the scratch image.
RUN mkdir -p /out/data /out/tmp

FROM scratch
COPY --from=build /out/replog /replog
# The process runs as an unprivileged user; /data belongs to it, and a named
# volume mounted there starts as a copy of it, owner included. To mount a
# host folder instead, give it to uid 65532 or run with --user 0.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/tmp /tmp
USER 65532:65532
ENV DATA_DIR=/data PORT=8080 GRPC_PORT=9090
# HTTP API, node-to-node gRPC.
EXPOSE 8080 9090
VOLUME /data
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD ["/replog", "healthcheck"]
ENTRYPOINT ["/replog"]
