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
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/aurora /aurora
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/aurora"]
CMD ["serve", "--data-dir", "/data"]
