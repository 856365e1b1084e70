# tracehouse: one image for every role (`serve`, `serve ingest`, `serve query`, `migrate`, `keys`).
FROM python:3.11-slim AS build
# A C compiler for the decode path and the batcher, which setup.py compiles with mypyc, and for ingest/_multipart.c,
# ingest/_fresh.c, ingest/_otlp.c and storage/_rowbinary.c (the final image needs none).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY schemas schemas
COPY storage storage
COPY ingest ingest
COPY query query
COPY tracehouse tracehouse
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/tracehouse tracehouse \
    && mkdir -p /var/lib/tracehouse && chown tracehouse /var/lib/tracehouse
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER tracehouse
WORKDIR /var/lib/tracehouse
ENV TRACEHOUSE_DATA_DIR=/var/lib/tracehouse TRACEHOUSE_HOST=0.0.0.0
EXPOSE 1984
ENTRYPOINT ["tracehouse"]
CMD ["serve", "--host", "0.0.0.0", "--port", "1984"]
