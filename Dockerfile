# ocelot's container image: the agent on a minimal base, as a non-root user.
#
#   buildah bud -t ocelot .                       # compile in a Rust image, run on distroless cc
#   docker build -t ocelot .                      # the same with Docker
#   buildah bud --build-arg BINARY_STAGE=prebuilt -t ocelot .
#                                                 # take target/release/ocelot as built here
#
# The binary links glibc dynamically, so the runtime base must carry glibc 2.36 or
# later (distroless cc-debian12 does, with CA certificates and tzdata). RUNTIME_IMAGE
# picks another such base, e.g. one mirrored in a registry of your own.
#
# Ports: 4317 OTLP/gRPC, 4318 OTLP/HTTP, 8888 self-metrics, 13133 health_check (for
# Kubernetes' probes; no HEALTHCHECK, since the kubelet probes it). State (file
# offsets, persistent queues) lives in the volume /var/lib/ocelot.

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY_STAGE=build

# Compiled here, in a Rust image on the same Debian release as the runtime's glibc.
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && mkdir /out && cp target/release/ocelot /out/ocelot
WORKDIR /state

# Or a binary built outside (BINARY, relative to the build context).
FROM scratch AS prebuilt
ARG BINARY=target/release/ocelot
COPY ${BINARY} /out/ocelot
# An empty directory to copy as the state volume's mount point.
WORKDIR /state

FROM ${BINARY_STAGE} AS binary

FROM ${RUNTIME_IMAGE}
COPY --from=binary /out/ocelot /usr/bin/ocelot
COPY packaging/container/config.yaml /etc/ocelot/config.yaml
# 65532 is distroless' nonroot user; the state directory is its own.
COPY --from=binary --chown=65532:65532 /state/ /var/lib/ocelot/
USER 65532:65532
VOLUME /var/lib/ocelot
EXPOSE 4317 4318 8888 13133
ENTRYPOINT ["/usr/bin/ocelot"]
CMD ["--config", "/etc/ocelot/config.yaml", "--storage-dir", "/var/lib/ocelot"]
