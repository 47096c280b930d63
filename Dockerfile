# Aurora container image: a static binary on distroless, running as non-root.
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t aurora .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO off: the embedded SQLite store is pure Go (modernc.org/sqlite).
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/auroradev/aurora/cmd.Version=${VERSION} -X github.com/auroradev/aurora/cmd.Commit=${COMMIT}" \
      -o /out/aurora . \
 && mkdir -p -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/aurora /aurora
# The data dir holds the users' password hashes: private to the user Aurora
# runs as. COPY creates the top directory 0755 whatever the source's mode,
# hence --chmod (Aurora also tightens it to 0700 on start, with a warning).
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/aurora"]
CMD ["serve", "--data-dir", "/data"]
