# The `chorus` binary in a small runtime image (every role: node, CLI, devnet).
#
#   docker build -t chorus:local .
#   docker run --rm chorus:local --help
#
# A 4-validator network with a worker served by a model server: deploy/compose.yaml.
# The build stage compiles the release binary (a few minutes; BuildKit caches the
# registry and target directories between builds); the runtime stage holds only the binary,
# the deploy scripts and a non-root user. TLS roots are compiled in (webpki-roots), so the
# image needs no CA bundle.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p chorus \
    && cp target/release/chorus /usr/local/bin/chorus

FROM debian:trixie-slim
RUN useradd --system --uid 10001 --user-group --home-dir /net --shell /usr/sbin/nologin chorus \
    && mkdir -p /net && chown chorus:chorus /net
COPY --from=build /usr/local/bin/chorus /usr/local/bin/chorus
COPY deploy/init.sh deploy/setup.sh /usr/local/share/chorus/
USER chorus
WORKDIR /net
# libp2p (TCP) and the REST API; the API listens on 127.0.0.1 unless the config says otherwise.
EXPOSE 4001 8080
ENTRYPOINT ["chorus"]
CMD ["--help"]
