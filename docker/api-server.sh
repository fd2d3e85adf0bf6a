#!/usr/bin/env bash
# Entry of the api-server container: the simple auth manager's passwords file from .env
# (AIRFLOW_ADMIN_PASSWORD, user "admin"), readable by this container's user only, then the image's own
# entrypoint. The password never lands in the image or in docker-compose.yaml.
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
# Where the simple auth manager reads its passwords when [core] simple_auth_manager_passwords_file is unset.
PASSWORDS_FILE="${AIRFLOW_HOME:-/opt/airflow}/simple_auth_manager_passwords.json.generated"
umask 077
python -c 'import json, os, sys; json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' \
  "$PASSWORDS_FILE"
unset AIRFLOW_ADMIN_PASSWORD
exec /usr/bin/dumb-init -- /entrypoint "$@"
