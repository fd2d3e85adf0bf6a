-- The SQL share lives beside the Airflow metadata in its own database.
CREATE DATABASE share;
