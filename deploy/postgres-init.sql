-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/).
-- One database per service: no service can read another service's tables.
-- Keep this list equal to deploy.processes.SERVICE_NAMES (tests/unit/test_compose.py checks it).
CREATE DATABASE identity;
CREATE DATABASE scoring;
CREATE DATABASE certificates;
CREATE DATABASE payments;
CREATE DATABASE verification;
