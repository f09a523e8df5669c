# The edi_gateway image: one image for every role (setup, worker, web, operators' commands); the
# compose file picks the subcommand. Dependencies come from requirements.lock, so the image runs the
# exact versions CI tested.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/edi-gateway
COPY requirements.lock ./
COPY pyproject.toml README.md ./
COPY edi_gateway ./edi_gateway
COPY schemas ./schemas
COPY routing_rules ./routing_rules
COPY pathway_models ./pathway_models
COPY fixtures ./fixtures
# The lock also pins the test and dev tools; as constraints it fixes the versions of what the
# package needs and installs nothing else.
RUN /opt/edi-gateway/bin/pip install --constraint requirements.lock .

FROM python:3.11-slim
# A fixed, unprivileged account; its home is the gateway's HOME (owner-only), a volume in compose.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/edi-gateway --create-home \
        --shell /usr/sbin/nologin edi \
    && chmod 0700 /var/lib/edi-gateway
COPY --from=build /opt/edi-gateway /opt/edi-gateway
ENV PATH=/opt/edi-gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EDI_GATEWAY_HOME=/var/lib/edi-gateway
USER 10001:10001
WORKDIR /var/lib/edi-gateway
ENTRYPOINT ["edi-gateway"]
CMD ["--help"]
