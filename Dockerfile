# Multi-stage build: the same `go build` line as the Makefile's GOBUILD, into
# a small distroless image that runs `relay serve` as a non-root user.
FROM golang:1.26-bookworm AS build
# make docker passes these (.dockerignore keeps .git out of the context).
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/relay ./cmd/relay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/relay /relay
USER nonroot:nonroot
EXPOSE 9095
# Configure with --config (or RELAY_CONFIG) and DATABASE_URL; listen_address
# must not be 127.0.0.1 inside a container (e.g. RELAY_LISTEN_ADDRESS=0.0.0.0:9095).
ENTRYPOINT ["/relay"]
CMD ["serve"]
