# gestor's image: compiled in the official Rust image, run on debian:bookworm-slim.
#
#   docker build -t gestor/gestor:latest .
#
# Hosts that cannot pull the Rust image (no registry) package a binary built
# on a bookworm host with the same toolchain instead:
#
#   cargo build --release --locked
#   docker build --target prebuilt -t gestor/gestor:latest .
#
# Both builders work for both commands: BuildKit builds only the stages the
# target needs; the classic builder (Debian's docker.io 20.10) builds every
# stage before the target, so the `prebuilt` stages come first and tolerate a
# clean checkout without target/release/gestor.
#
# The daemon needs the Docker socket, which is root-equivalent. The image runs
# as the unprivileged user `gestor` (uid 10001); docker-compose.yml runs it as
# root because the userspace collector reads /proc/<pid>/io of other
# containers' root processes (see docs/stack.md).

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime-base
ARG GESTOR_UID=10001
RUN useradd --system --uid "${GESTOR_UID}" --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gestor \
    && install -d -o gestor -g gestor -m 0750 /var/lib/gestor /var/lib/gestor/spool
ENV GESTOR_LISTEN=0.0.0.0:9797 \
    GESTOR_SPOOL_DIR=/var/lib/gestor/spool
EXPOSE 9797
# `gestor healthcheck` asks /healthz on the address GESTOR_LISTEN names (an
# unspecified address means 127.0.0.1) and exits 0 only on HTTP 200; /healthz
# turns 503 when no cycle has finished for 3 intervals + 30 s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/gestor", "healthcheck"]
USER gestor
ENTRYPOINT ["/usr/local/bin/gestor"]
CMD ["run"]

# The host's binary, if the context has one (.dockerignore passes only
# target/release/gestor; the glob `targe[t]` may match nothing).
FROM ${RUNTIME_IMAGE} AS prebuilt-binary
COPY Cargo.toml targe[t] /context/
RUN mkdir -p /out \
    && if [ -f /context/release/gestor ]; then \
           install -m 0755 /context/release/gestor /out/gestor; \
       else \
           echo "note: no target/release/gestor in the build context (needed only by --target prebuilt)"; \
       fi

FROM runtime-base AS prebuilt
COPY --from=prebuilt-binary /out/ /usr/local/bin/

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schema ./schema
RUN cargo build --release --locked \
    && strip target/release/gestor

FROM runtime-base AS runtime
COPY --from=build /src/target/release/gestor /usr/local/bin/gestor
