# The production-like image: Airflow 3.3 with the project's pinned requirements and code.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root requirements.txt pyproject.toml /opt/datashare/
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --no-cache --compile-bytecode --python "$(command -v python)" -r /opt/datashare/requirements.txt
COPY --chown=airflow:root . /opt/datashare
# The repository's revision, recorded in every release's manifest (code_version): the image has no git.
ARG REVISION=
ENV DATASHARE_CODE_REVISION=${REVISION}
RUN uv pip install --no-cache --python "$(command -v python)" --no-deps -e /opt/datashare \
 && python -m compileall -q /opt/datashare/plugins /opt/datashare/transforms /opt/datashare/units /opt/datashare/dags
ENV DATASHARE_HOME=/opt/datashare \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/datashare/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/datashare/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false
