# Switchyard's image: a Rust build stage, then a small Debian runtime with the one binary.
#
#   docker build -t switchyard .
#   docker run --rm --network host switchyard --help
#
# The entrypoint is the `switchyard` binary itself; configure it with flags (the command) or
# SWITCHYARD_* environment variables, exactly as outside a container (docs/deployment.md).
# `docker run ... switchyard token --room R --identity I` mints an access token.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
# No root inside: a user of its own, with no home and no shell.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
USER switchyard
# Listen on every address inside the container: the published port (or the host network) and
# the reverse proxy decide who reaches it.
ENV SWITCHYARD_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 8080 50000/udp 50000/tcp
# bash's /dev/tcp asks /healthz without curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "port=${SWITCHYARD_HTTP_LISTEN##*:}; exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '^ok' <&3"]
# SIGTERM (docker stop) starts the graceful shutdown: clients are told, and the process exits
# within shutdown_grace_secs (3 s by default), well inside docker's 10 s before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchyard"]
