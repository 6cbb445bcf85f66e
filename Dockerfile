# syntax=docker/dockerfile:1
# agentpool: master and workers in one image.
#   docker build -t agentpool .
#   docker run -p 8000:8000 -e REDIS_URL=redis://redis:6379 agentpool

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin agentpool \
    && cp target/release/agentpool /usr/local/bin/agentpool

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin agentpool
WORKDIR /app
COPY --from=build /usr/local/bin/agentpool /usr/local/bin/agentpool
COPY config/agentpool.toml /app/config/agentpool.toml
RUN mkdir -p /app/data && chown agentpool:agentpool /app/data
USER agentpool
ENV AGENTPOOL_DATA_DIR=/app/data \
    RUST_LOG=info
VOLUME ["/app/data"]
EXPOSE 8000
ENTRYPOINT ["agentpool"]
CMD ["serve", "--config", "/app/config/agentpool.toml", "--listen", "0.0.0.0:8000"]
