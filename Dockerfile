# One image for every callpulse process: the API (the default), the stream worker and the
# simulator. docker-compose.yml runs all three from it.
#   docker build -t callpulse .
#   docker run --rm -p 8000:8000 -e CALLPULSE_KAFKA_BOOTSTRAP=kafka:9092 callpulse
#   docker run --rm -e CALLPULSE_KAFKA_BOOTSTRAP=kafka:9092 callpulse callpulse worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 callpulse \
 && useradd --system --uid 10001 --gid callpulse --create-home \
        --home-dir /var/lib/callpulse --shell /usr/sbin/nologin callpulse

WORKDIR /src

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when
# pyproject.toml changes, not on every code edit. (Every dependency has an x86-64 wheel, so no
# compiler is needed.)
# The `rocksdb` extra too: workers on Kubernetes keep their tables in RocksDB on a volume.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['rocksdb']))" > requirements.txt \
 && pip install -r requirements.txt \
 && rm requirements.txt

# Then the project itself (README.md is optional: pyproject.toml names it as the readme).
COPY README.md* ./
COPY api ./api
COPY callpulse ./callpulse
COPY stream ./stream
COPY schemas ./schemas
# The event schemas are package data of `schemas`; the last line fails the build if the
# validator cannot find them in the installed package.
RUN pip install --no-deps . \
 && cd / && rm -rf /src \
 && python -c "from stream.validation import EventValidator; EventValidator()"

# Faust keeps its data directory ({app id}-data) in the working directory: the user's home.
WORKDIR /var/lib/callpulse
USER 10001:10001
EXPOSE 8000
CMD ["callpulse", "api", "--host", "0.0.0.0"]
